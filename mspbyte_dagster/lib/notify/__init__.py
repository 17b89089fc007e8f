"""Alerts that reach people: which events a route announces (routing), the messages each kind of
channel takes (messages), how they are sent (channels), and the delivery round over the outbox
(delivery). The outbox rows are written in the pass's transaction; Dagster delivers them."""
