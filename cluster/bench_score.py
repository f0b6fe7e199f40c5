"""`llmrl bench score` (being written)."""


def add_arguments(parser):
    parser.set_defaults(handler=lambda args: 0)
