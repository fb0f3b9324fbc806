"""Capacity of the static KV cache: which rows and state slot each running request holds.

Owned by the scheduler (as vLLM's KV-cache manager is); the runner only receives the result.
Live rows stay contiguous, [0, used), so a decode step attends over a plain slice of the cache:
when a request leaves, the last live rows move into its place. The scheduler hands those
moves to the runner, which copies the K/V before its next step.
"""

from __future__ import annotations

from pipeline.engine.messages import RequestState, RowMove


class CacheRows:
    """`max_rows` KV-cache rows and as many per-request state slots (a request takes one slot and
    1 or 2 rows: conditional, then unconditional if guided)."""

    def __init__(self, max_rows: int):
        self.max_rows = max_rows
        self._free_slots = list(range(max_rows - 1, -1, -1))
        self._owners: list[RequestState] = []  # cache row -> the request holding it
        self._moves: list[RowMove] = []

    @property
    def used(self) -> int:
        return len(self._owners)

    def fits(self, n_rows: int) -> bool:
        return self.used + n_rows <= self.max_rows

    def allocate(self, state: RequestState) -> None:
        """Give a request a slot and the next free rows (right after the live ones)."""
        state.slot = self._free_slots.pop()
        for _ in range(state.n_rows):
            state.rows.append(self.used)
            self._owners.append(state)

    def release(self, state: RequestState) -> None:
        """Free a request's slot and rows; the last live rows move into the gaps (see `take_moves`)."""
        self._free_slots.append(state.slot)
        for row in sorted(state.rows, reverse=True):
            last = self.used - 1
            if row != last:
                owner = self._owners[last]
                self._moves.append(RowMove(last, row, owner.max_len))  # the positions it can use, not the whole row
                owner.rows[owner.rows.index(last)] = row
                self._owners[row] = owner
            self._owners.pop()
        state.rows.clear()

    def take_moves(self) -> list[RowMove]:
        """The row moves since the last call, in the order they must be applied."""
        moves, self._moves = self._moves, []
        return moves
