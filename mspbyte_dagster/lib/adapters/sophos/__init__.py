"""Sophos Central adapter: the partner's customers read from the Sophos Central Partner API into Sophos
snapshots (docs/snapshot-format-sophos.md).

`files` names the snapshot's files and checks them, `client` talks to Central (the partner token,
whoami, the customer list, retries, both paging styles), `reader` turns one customer's answers into
snapshot files. The local Sophos Central of development and tests is `mspbyte_dev.fake_sophos`, outside
the production package.
"""
