//! Kafka's default partitioner for keyed records: `toPositive(murmur2(key)) % partitions`,
//! exactly as the Java client's `Utils.murmur2` (seed 0x9747b28c) and librdkafka's
//! `murmur2_random` partitioner compute it, so a key lands in the same partition whichever
//! protocol or client wrote it.

const SEED: u32 = 0x9747_b28c;
const M: u32 = 0x5bd1_e995;
const R: u32 = 24;

/// Kafka's 32-bit murmur2 of `data`, as `Utils.murmur2` returns it (a Java `int`).
pub fn murmur2(data: &[u8]) -> i32 {
    let length = data.len() as u32;
    let mut h: u32 = SEED ^ length;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        // Little-endian 4-byte words, as Java assembles them.
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    // The fall-through switch on `length % 4` of the reference code.
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Kafka's `Utils.toPositive`: clears the sign bit (not `abs`, which overflows on MIN).
pub fn to_positive(hash: i32) -> u32 {
    (hash & 0x7fff_ffff) as u32
}

/// The partition Kafka's default partitioner (and librdkafka's `murmur2_random`) gives a key.
/// `partitions` must be at least 1; 0 is treated as 1 so this never divides by zero.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    to_positive(murmur2(key)) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's `UtilsTest.testMurmur2`, plus values of `Utils.murmur2` that Akka's
    /// Murmur2Spec checks.
    #[test]
    fn matches_kafka_test_vectors() {
        let cases: &[(&[u8], i32)] = &[
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"a-little-bit-longer-string", -1486304829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58897971,
            ),
            (b"abc", 479470107),
            (b"1", -1993445489),
            (b"12", 126087238),
            (b"123", -267702483),
            (b"1234", -1614185708),
            (b"12345", -1188365604),
        ];
        for (key, expected) in cases {
            assert_eq!(
                murmur2(key),
                *expected,
                "key {:?}",
                String::from_utf8_lossy(key)
            );
        }
    }

    #[test]
    fn partitions_are_non_negative_and_in_range() {
        // "foobar" hashes negative: toPositive, not abs.
        assert_eq!(
            partition_for_key(b"foobar", 7),
            ((-790332482i32 & 0x7fff_ffff) as u32) % 7
        );
        for n in 1..50u32 {
            let key = n.to_string();
            assert!(partition_for_key(key.as_bytes(), n) < n);
        }
        assert_eq!(partition_for_key(b"x", 0), 0);
    }
}
