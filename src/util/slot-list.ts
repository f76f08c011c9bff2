/**
 * An unordered collection of items that each keep their own index in it (the field named by
 * `key`, -1 while in none): add and delete move references only, and allocate nothing once the
 * array has grown to the high-water mark. A Set on the connection path reallocated its hash
 * table as it emptied (a table shrinks below a quarter full) and as deleted entries filled it:
 * with one connection at a time that was a new table at nearly every add or delete, ~470 bytes
 * per connection for the worker's four sets (docs/benchmarks.md). An item is in one list per key
 * at a time.
 */
export class SlotList<K extends string, T extends Record<K, number>> {
  private readonly items: Array<T | undefined> = []
  private count = 0

  constructor (private readonly key: K) {}

  get size (): number { return this.count }

  /** The item at index `i` (0 <= i < size): lists are iterated by index, so that a walk allocates no iterator. */
  at (i: number): T {
    return this.items[i] as T
  }

  add (item: T): void {
    if (item[this.key] !== -1) throw new Error(`SlotList: the item is already in a list by ${this.key}`)
    item[this.key] = this.count as T[K]
    this.items[this.count++] = item
  }

  /** Whether the item was there. The last item takes its place. */
  delete (item: T): boolean {
    const slot = item[this.key]
    if (slot < 0 || slot >= this.count || this.items[slot] !== item) return false
    const last = --this.count
    if (slot !== last) {
      const moved = this.items[last] as T
      this.items[slot] = moved
      moved[this.key] = slot as T[K]
    }
    this.items[last] = undefined
    item[this.key] = -1 as T[K]
    return true
  }

  /** A copy of the items (for a rare walk that may delete as it goes). */
  toArray (): T[] {
    return this.items.slice(0, this.count) as T[]
  }
}
