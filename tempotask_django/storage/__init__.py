"""Redis storage: key names, connection, Lua scripts and the store that runs every state change."""
