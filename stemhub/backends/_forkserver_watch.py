"""Preloaded by the local engine's forkserver: it exits when its hub is gone.

Importing this module is its whole effect, because a forkserver's only hook is the list
of modules it imports at start (``set_forkserver_preload``). Nothing else imports it.
"""

from stemhub.backends.parent_watch import die_with_parent

die_with_parent()
