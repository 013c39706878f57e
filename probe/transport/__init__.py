"""Where the collector's formatted flows go (goflow2's ``transport/``): a file or stdout,
or NATS JetStream (GoFlow2+'s message bus), one message per flow."""
