// New connections per remote address (maxConnectionsPerAddressPerSecond): a token bucket per
// address holding one second's worth, so a burst up to the limit passes and a steady flood is
// held to the limit. Refused attempts take no token: an address that slows down gets in again.

/** Addresses tracked at most; past it, new addresses are let through unchecked until a sweep frees room. */
const MAX_TRACKED_ADDRESSES = 50_000;

interface Bucket {
  tokens: number;
  at: number;
}

export class ConnectionRateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly perSecond: number,
    private readonly maxTracked = MAX_TRACKED_ADDRESSES,
  ) {}

  /** Whether a new connection from `address` (an IP, no port) is within the limit; it is counted if so. */
  admit(address: string, now: number): boolean {
    const bucket = this.buckets.get(address);
    if (!bucket) {
      // Failing open: refusing unknown addresses would lock out everyone during a flood from many.
      if (this.buckets.size >= this.maxTracked) return true;
      this.buckets.set(address, { tokens: this.perSecond - 1, at: now });
      return true;
    }
    bucket.tokens = this.refilled(bucket, now);
    bucket.at = now;
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  /** Forgets the addresses whose bucket is full again: they are as good as new. Run every second. */
  sweep(now: number): void {
    for (const [address, bucket] of this.buckets) if (this.refilled(bucket, now) >= this.perSecond) this.buckets.delete(address);
  }

  get trackedAddresses(): number {
    return this.buckets.size;
  }

  private refilled(bucket: Bucket, now: number): number {
    return Math.min(this.perSecond, bucket.tokens + (Math.max(0, now - bucket.at) * this.perSecond) / 1000);
  }
}

/** The IP of a remote address as the limits count it: an IPv4 client on a dual-stack socket is its IPv4 address. */
export function addressKey(ip: string): string {
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}
