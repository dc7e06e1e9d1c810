"""The server workflow between the API handlers and the scheduler, Placement and database.

Handlers validate and shape HTTP; the conductor decides: schedule, claim, hand over to a host,
and undo what a failed step left behind (as Placement's handlers call its objects).
"""
