//! DJN obfuscators through a fixed-base table, and an explicit pool of precomputed obfuscators.

use std::sync::Mutex;

use rand::{CryptoRng, RngCore};
use rayon::prelude::*;
use rug::Integer;

use super::{Ciphertext, PublicKey, mul_mod, sqr_mod};
use crate::error::Result;

/// `windows[i][j − 1] = h_s^(j·256^i) mod n²` for byte positions i and byte values 1 ≤ j ≤ 255, so
/// `h_s^a = Π_i windows[i][a_i − 1]` over the non-zero bytes a_i of the exponent.
pub(crate) struct DjnTable {
    windows: Vec<Vec<Integer>>,
}

impl DjnTable {
    pub(crate) fn build(hs: &Integer, n2: &Integer, exponent_bits: u32) -> DjnTable {
        let n_windows = (exponent_bits / 8) as usize;
        // Bases h_s^(256^i): 8 squarings each, sequential and cheap.
        let mut bases = Vec::with_capacity(n_windows);
        let mut b = hs.clone();
        for _ in 0..n_windows {
            bases.push(b.clone());
            for _ in 0..8 {
                sqr_mod(&mut b, n2);
            }
        }
        // The 255 powers of each base: independent per window, built in parallel.
        let windows = bases
            .into_par_iter()
            .map(|base| {
                let mut row = Vec::with_capacity(255);
                let mut x = base.clone();
                row.push(x.clone());
                for _ in 1..255 {
                    mul_mod(&mut x, &base, n2);
                    row.push(x.clone());
                }
                row
            })
            .collect();
        DjnTable { windows }
    }

    /// `h_s^a mod n²` for a uniform exponent a of `8·windows` bits from `rng`.
    pub(crate) fn obfuscator<R: RngCore + CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        n2: &Integer,
    ) -> Integer {
        // 3072 / 8 is the largest window count a supported key allows.
        let mut exponent = [0u8; 384];
        let exponent = &mut exponent[..self.windows.len()];
        rng.fill_bytes(exponent);
        let mut acc: Option<Integer> = None;
        for (row, &byte) in self.windows.iter().zip(exponent.iter()) {
            if byte == 0 {
                continue;
            }
            let entry = &row[byte as usize - 1];
            match acc.as_mut() {
                None => acc = Some(entry.clone()),
                Some(a) => mul_mod(a, entry, n2),
            }
        }
        // a = 0 (probability 2^-256) gives the obfuscator h_s^0 = 1.
        acc.unwrap_or_else(|| Integer::from(1))
    }
}

/// A pool of precomputed obfuscators for one public key, so that encryption on a latency-critical
/// path costs only the plaintext part (well under one multiplication mod n²).
///
/// The pool never starts threads. The caller fills it, typically from a thread or rayon task it
/// owns and can stop, with [`ObfuscatorPool::fill`]; [`ObfuscatorPool::encrypt`] takes a
/// precomputed obfuscator when one is available and computes one otherwise. It is `Sync`, so one
/// thread can fill while others encrypt.
pub struct ObfuscatorPool {
    pk: PublicKey,
    capacity: usize,
    ready: Mutex<Vec<Integer>>,
}

impl ObfuscatorPool {
    /// An empty pool for `pk` holding at most `capacity` obfuscators.
    pub fn new(pk: PublicKey, capacity: usize) -> ObfuscatorPool {
        ObfuscatorPool {
            pk,
            capacity,
            ready: Mutex::new(Vec::new()),
        }
    }

    /// The key the pool serves.
    pub fn public_key(&self) -> &PublicKey {
        &self.pk
    }

    /// Obfuscators ready now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no obfuscator is ready.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Computes up to `max_new` obfuscators (fewer when the pool reaches its capacity) on the
    /// calling thread and returns how many were added. Computation happens outside the lock.
    pub fn fill(&self, max_new: usize) -> usize {
        let mut rng = rand::thread_rng();
        let mut added = 0;
        while added < max_new && self.len() < self.capacity {
            let obf = self.pk.obfuscator(&mut rng);
            let mut ready = self.lock();
            if ready.len() >= self.capacity {
                break;
            }
            ready.push(obf);
            added += 1;
        }
        added
    }

    /// Encrypts m (|m| < n) with a pooled obfuscator, or a fresh one if the pool is empty. Each
    /// obfuscator is used once.
    pub fn encrypt(&self, m: &Integer) -> Result<Ciphertext> {
        let m = self.pk.reduce_plaintext(m, "m")?;
        let pooled = self.lock().pop();
        let obf = match pooled {
            Some(o) => o,
            None => self.pk.obfuscator(&mut rand::thread_rng()),
        };
        Ok(Ciphertext(self.pk.mul_plain_part(&m, obf)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Integer>> {
        // A panic while holding the lock cannot leave the Vec inconsistent (push/pop only), so a
        // poisoned lock is still usable.
        self.ready.lock().unwrap_or_else(|e| e.into_inner())
    }
}
