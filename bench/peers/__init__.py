"""Other job queues measured on the same Redis with the same job body (``bench/run.py --peers``).

Each Python peer has one adapter module here (``<name>_peer.py``: enqueue one job, run a worker) and a pinned
requirements file (``<name>.txt``); the adapters run in the peer's own virtualenv under
``bench/.peers/<name>`` through ``python -m bench.peers.cli <name> ...`` and need only the peer's
packages and redis-py. BullMQ on Node.js lives in ``node/``. ``registry.py`` lists the peers and
their worker configurations; ``runner.py`` installs and measures them (main virtualenv).
"""
