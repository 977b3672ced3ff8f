//! The generator's randomness: splitmix64, written here rather than taken from a crate so that no
//! upgrade can change the files of a seed.

/// splitmix64: tiny, fast, and fixed here forever, so a seed always means the same files.
#[derive(Debug, Clone)]
pub(super) struct Rng(pub(super) u64);

const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Rng {
    /// A generator of its own for each (seed, stream, id).
    pub(super) fn keyed(seed: u64, stream: u64, id: u64) -> Rng {
        let base = mix64(seed ^ stream.wrapping_mul(GOLDEN_GAMMA));
        Rng(mix64(base ^ id.wrapping_mul(0xd6e8_feb8_6659_fd93)))
    }

    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN_GAMMA);
        mix64(self.0)
    }

    /// Uniform in 0..n (Lemire's multiply-shift; the bias is below 2^-40 for our n).
    pub(super) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    pub(super) fn range(&mut self, lo: u64, hi_inclusive: u64) -> u64 {
        lo + self.below(hi_inclusive - lo + 1)
    }

    pub(super) fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }

    pub(super) fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let mut draw = self.below(total);
        for (i, &w) in weights.iter().enumerate() {
            if draw < u64::from(w) {
                return i;
            }
            draw -= u64::from(w);
        }
        weights.len() - 1
    }
}
