"""The order saga: one orchestrator per order, driven by the ``order-saga`` inbox.

States (public ``status``)::

    pending --all lines reserved--> stock_reserved --charge captured--> paid
      --purchase grants sent--> delivered --buyer and sellers notified--> completed

Failure ends: ``rejected`` (a line out of stock, or inventory silent past the
reserve deadline; every held reservation is released, last line first),
``payment_failed`` (declined, provider failures after the payments agent's
retries, or no answer before the charge deadline; stock released).

Cancel (``order.cancel_requested``): accepted in every state but the failure
ends, ``cancelled`` and ``refunded`` (those answer ``ORDER_NOT_CANCELLABLE``).
Before the charge is sent it releases stock and ends ``cancelled``; while the
charge is in flight the outcome decides (failed: ``cancelled``; captured:
refund); once paid, including ``completed`` orders (digital goods are delivered
at once, so "until completed" would leave no window to refund), it refunds,
then releases stock and revokes the purchase grants, and ends ``refunded``.

Deadlines: reserve, charge and refund each have one (``Settings.saga_*``); a
timer signals passed deadlines as ``saga.step_timed_out`` through the inbox.
A timed-out reserve or charge fails the saga and compensates. A charge the
payments agent could not attempt (its circuit breaker is open:
``saga.payment_deferred``) waits: it is sent again every ``saga_charge_retry``
seconds (same idempotency key) until it gets an answer or the charge deadline
passes. A refund that fails for a transient reason (provider down, circuit
open) or gets no answer in time is sent again (same key) with exponential
backoff (``saga_refund_backoff`` .. ``saga_refund_max_backoff``) until it
succeeds; one refused for good is left to an operator. A charge or reservation
that succeeds after the saga gave up is undone (refund / release).

Expiry (``agents.saga.retention``): an ended order is forgotten ``saga_retention``
seconds after its last change: its reservations are dropped, then its entry deleted.

Stuck orders (``agents.saga.recovery``): past an armed deadline, or with a
failed refund; an admin's ``order.retry_requested`` re-drives them. A second
cancel of an order whose refund is under way sends the refund again now.
"""
