"""The pure Matrix core: identifiers, events, room rules, state and sync assembly.

Nothing in this package performs I/O; everything is a plain function over data
so that it can be tested without servers.
"""
