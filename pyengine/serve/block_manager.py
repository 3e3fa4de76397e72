"""The paged KV cache's bookkeeping: which pool blocks each sequence holds, and which full
prompt blocks can be shared by later sequences with the same prefix (prefix caching).

The pool itself (per layer, [n_blocks, kv_heads, block_size, head_dim] float32 for K and for V)
is plain memory the kernels read through each sequence's block table; this class never touches
it. A block is in one of three states: free; held by one or more sequences (refcount > 0); or
cached: full of a prompt prefix's keys, held by nobody, kept (least recently used first to go)
until a new allocation needs it.
"""

from __future__ import annotations

from collections import OrderedDict


class CacheFullError(RuntimeError):
    """Not enough free or evictable blocks for an allocation."""


def block_hashes(tokens, block_size: int) -> list[int]:
    """One hash per full block of `tokens`, each covering the whole prefix up to its block's end
    (a block's keys depend on every earlier token, not only its own)."""
    out, parent = [], 0
    for i in range(len(tokens) // block_size):
        parent = hash((parent, tuple(tokens[i * block_size : (i + 1) * block_size])))
        out.append(parent)
    return out


class BlockManager:
    def __init__(self, n_blocks: int, block_size: int, prefix_caching: bool = True):
        if n_blocks < 0 or block_size < 1:  # 0 blocks: a model whose every layer uses rings
            raise ValueError(
                f"need n_blocks >= 0 and block_size >= 1, got {n_blocks}, {block_size}"
            )
        self.n_blocks = n_blocks
        self.block_size = block_size
        self.prefix_caching = prefix_caching
        self._free = list(range(n_blocks - 1, -1, -1))  # a stack: low ids first
        self._refs = [0] * n_blocks
        self._cached: OrderedDict[int, int] = OrderedDict()  # hash -> block, held by nobody
        self._by_hash: dict[int, int] = {}  # hash -> block, every registered full block
        self._hash_of: dict[int, int] = {}  # block -> its hash

    # ---- counts ------------------------------------------------------------------------------

    @property
    def available(self) -> int:
        """Blocks an allocation can take now: free ones and cached ones nobody holds."""
        return len(self._free) + len(self._cached)

    @property
    def used(self) -> int:
        """Blocks held by at least one sequence."""
        return self.n_blocks - self.available

    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.block_size)

    # ---- prefix cache ------------------------------------------------------------------------

    def lookup(self, hashes: list[int]) -> list[int]:
        """The blocks holding the longest cached run of `hashes` (nothing is taken yet)."""
        if not self.prefix_caching:
            return []
        found = []
        for h in hashes:
            block = self._by_hash.get(h)
            if block is None:
                break
            found.append(block)
        return found

    def register(self, block: int, h: int) -> None:
        """Marks a held, full block as holding the prefix with hash h (shareable from now)."""
        if not self.prefix_caching or h in self._by_hash or block in self._hash_of:
            return
        self._by_hash[h] = block
        self._hash_of[block] = h

    # ---- allocation --------------------------------------------------------------------------

    def allocate(self, n: int, shared: list[int] = ()) -> list[int]:
        """Takes the `shared` blocks (from lookup) and n new ones; raises CacheFullError, taking
        nothing, when there are not enough."""
        reclaimable = sum(1 for b in shared if self._refs[b] == 0)
        if n > self.available - reclaimable:
            raise CacheFullError(f"{n} KV blocks needed, {self.available - reclaimable} available")
        for b in shared:
            if self._refs[b] == 0:
                del self._cached[self._hash_of[b]]
            self._refs[b] += 1
        new = []
        for _ in range(n):
            if self._free:
                b = self._free.pop()
            else:  # evict the least recently used cached block
                h, b = self._cached.popitem(last=False)
                del self._by_hash[h]
                del self._hash_of[b]
            self._refs[b] = 1
            new.append(b)
        return list(shared) + new

    def free(self, blocks: list[int]) -> None:
        """Releases a sequence's blocks: registered ones stay cached, the rest become free."""
        # Cached blocks are evicted from the front: the newly freed go to the back, a prefix's
        # later blocks ahead of its earlier ones (a later block is useless without the earlier).
        for b in reversed(blocks):
            self._refs[b] -= 1
            if self._refs[b] > 0:
                continue
            h = self._hash_of.get(b)
            if h is None:
                self._free.append(b)
            else:
                self._cached[h] = b
