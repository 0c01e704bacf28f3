"""Signals other apps listen to, so coordination's core never imports them.

`housekeeping` is sent by every coordinator daemon after its housekeeping pass (about
every two seconds): receivers run in the daemon's tick thread, so they must be quick and
guard themselves against running on several daemons at once (a lease or a row lock).
A receiver that raises is logged and the daemon lives on.
"""

from django.dispatch import Signal

housekeeping = Signal()  # sender: the Engine class; kwargs: instance (CoordinatorInstance)
