"""The admin dashboard's pages and actions, one module per page (mounted by admin.DashboardAdmin).

Every page reads Redis through the store's bounded read methods (storage/inspect.py): no page
reads a whole stream or scans the keyspace, so pages stay fast however long the queues get.
"""
