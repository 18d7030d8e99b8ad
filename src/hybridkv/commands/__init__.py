"""Sub-commands of the ``hybridkv`` CLI that live in their own module.

Each module has ``add_parser(subparsers)``, which registers its parser(s) with
``set_defaults(handler=...)``; the entry point calls ``args.handler(args)`` and gets an exit code.
Modules import torch and models lazily, inside their handlers, so ``hybridkv --help`` stays fast.
"""
