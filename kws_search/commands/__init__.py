"""One module per `kws-search` subcommand; each has `register(subparsers)`."""
