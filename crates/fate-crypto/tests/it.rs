//! Integration tests of fate-crypto: Paillier (identities, CRT, DJN, known answers, a
//! cross-check against the independent `fast-paillier` crate), encodings, packing, wire format,
//! PSI (vectors from FATE's own `fate_utils`) and secure aggregation.

use fate_crypto::Error;
use fate_crypto::encoding::{self, FixedPointEncoder, LR_FRAC_BITS};
use fate_crypto::packing::{GhPacker, PackingScheme};
use fate_crypto::paillier::{self, Ciphertext, Obfuscation, ObfuscatorPool, PublicKey, SecretKey};
use fate_crypto::psi::{self, EcdhSecret};
use fate_crypto::secagg::{self, SecAggKeyPair};
use fate_crypto::testing::{self, test_keypair_1024, test_keypair_1024_b, test_rng};
use proptest::prelude::*;
use rug::Integer;

fn int(s: &str) -> Integer {
    s.parse().expect("decimal integer")
}

fn hex_bytes(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        cases: n,
        ..ProptestConfig::default()
    }
}

/// Any integer with |m| < n/2, drawn from a few bit sizes including the extremes.
fn arb_plain() -> impl Strategy<Value = Integer> {
    prop_oneof![
        any::<i64>().prop_map(Integer::from),
        (any::<[u8; 64]>(), any::<bool>()).prop_map(|(b, neg)| {
            let x = Integer::from_digits(&b, rug::integer::Order::Msf);
            if neg { -x } else { x }
        }),
    ]
}

mod paillier_core {
    use super::*;

    #[test]
    fn keygen_gives_exact_size_and_distinct_primes() {
        let mut rng = test_rng(7);
        let (pk, sk) = paillier::keygen(1024, &mut rng).expect("keygen");
        assert_eq!(pk.key_bits(), 1024);
        assert_eq!(pk.n().significant_bits(), 1024);
        assert_eq!(sk.public_key(), &pk);
        let c = pk.encrypt(&Integer::from(12345)).expect("encrypt");
        assert_eq!(sk.decrypt(&c), 12345);
        // A second key from the same generator differs.
        let (pk2, _) = paillier::keygen(1024, &mut rng).expect("keygen");
        assert_ne!(pk.n(), pk2.n());
    }

    #[test]
    fn unsupported_key_sizes_are_rejected() {
        for bits in [0, 512, 1000, 4096] {
            assert_eq!(
                paillier::keygen(bits, &mut test_rng(1)).err(),
                Some(Error::UnsupportedKeySize { bits })
            );
        }
    }

    #[test]
    fn from_primes_rejects_bad_primes() {
        let p = int(testing::P_1024_A);
        let q = int(testing::Q_1024_A);
        let mut rng = test_rng(3);
        let equal = SecretKey::from_primes(p.clone(), p.clone(), &mut rng);
        assert!(matches!(equal, Err(Error::InvalidKey { .. })), "{equal:?}");
        let composite = SecretKey::from_primes(Integer::from(&p + 2u32), q.clone(), &mut rng);
        assert!(
            matches!(composite, Err(Error::InvalidKey { .. })),
            "{composite:?}"
        );
        let small = SecretKey::from_primes(Integer::from(1_000_003), q, &mut rng);
        assert!(matches!(
            small,
            Err(Error::InvalidKey { .. } | Error::UnsupportedKeySize { .. })
        ));
    }

    #[test]
    fn known_answer_textbook_encryption() {
        // Expected values computed independently with Python: (1 + m·n)·r^n mod n², r = 2^100 + 7.
        let (pk, sk) = test_keypair_1024();
        let r = (Integer::from(1) << 100u32) + 7u32;
        let expected_42 = concat!(
            "3151d889bf938faedf52dc02ea18493a9dd2ce565c45a1ed10dbf7577b38691c106a8a4dab6820509f4af478",
            "0bdfbb46b4c8b12496c74b8f27d97cc0abea5f3271d88f2c9f102dbcda4477476fc4dcc778e3c5d9a24e2db3",
            "31fd59d9291652c5d0679925dbef046ef6f3fe4131b35ba4fa5d1ce25c0c4363a8e351ecca4b574f3f3b666e",
            "7f572ba589f9c06ac840c5415169153ccd9d1e6b30eb3627991d5e0eee642cd4489646df675f8773e8f52b85",
            "d60251fcb9802f50defd1f50c3d5b0a85504483a8e2c6226bfddd32371959bbb03499e1507be38c8fa3ac0fe",
            "07d8f7970f387571a0cd5997b1ee23d61da295aee064d130eaa037dd7d554272266ec8ce",
        );
        let expected_minus_42 = concat!(
            "436e42b07f389d0d452eab48e6977d27ccfb13dd7989bd5e1206369db477706cb878d8a81675538c0bc2b35f",
            "4b3c66511aa8215dcb6ae5e7721d9e59fea3596743a16ab39137ed1650670907fc38b44c3339ca50d040aca9",
            "c1bf9e001f85642c39c0b4a667b1b5b6b6e2bae6c78e8bc098f04fe4f5b38b147505a9217448569d9306d81d",
            "b9fec341f24f4a8c3ce2b3cb0ab49051a2d185c2cc7d6452d35238d40369a2b5f8d2e0f284bedac9694e4ccd",
            "7a0e0491dc521e854e4c3f1ed6f5d109e44a410d0138323992720e04a3697bcba8da034c951ff4803fdb28b2",
            "a64beb05e05e75ba8e96af6e130930d0d708a087d68225d17ad1693a00ffd80bf5906c9e",
        );
        for (m, expected) in [(42i64, expected_42), (-42, expected_minus_42)] {
            let c = pk
                .encrypt_with_nonce(&Integer::from(m), &r)
                .expect("encrypt");
            assert_eq!(pk.ciphertext_to_bytes(&c), hex_bytes(expected), "m = {m}");
            assert_eq!(sk.decrypt_i64(&c), Ok(m));
        }
    }

    #[test]
    fn bad_nonces_and_plaintexts_are_errors() {
        let (pk, _) = test_keypair_1024();
        let n = pk.n().clone();
        assert!(matches!(
            pk.encrypt_with_nonce(&Integer::from(1), &Integer::new()),
            Err(Error::InvalidArgument { .. })
        ));
        assert!(matches!(
            pk.encrypt_with_nonce(&Integer::from(1), &n),
            Err(Error::InvalidArgument { .. })
        ));
        let p = int(testing::P_1024_A);
        assert!(matches!(
            pk.encrypt_with_nonce(&Integer::from(1), &p),
            Err(Error::InvalidArgument { .. })
        ));
        for m in [n.clone(), Integer::from(-&n), Integer::from(&n * 5u32)] {
            assert_eq!(
                pk.encrypt(&m).err(),
                Some(Error::PlaintextOutOfRange {
                    what: "m",
                    key_bits: 1024
                })
            );
        }
        // n − 1 and −(n − 1) are the extremes that still encrypt.
        let top = Integer::from(&n - 1u32);
        let (_, sk) = test_keypair_1024();
        assert_eq!(sk.decrypt(&pk.encrypt(&top).expect("n-1")), top);
        assert_eq!(
            sk.decrypt(&pk.encrypt(&Integer::from(-&top)).expect("-(n-1)")),
            1
        );
    }

    #[test]
    fn obfuscation_modes_and_secret_key_encryption_decrypt_alike() {
        let (pk, sk) = test_keypair_1024();
        let classic = pk.with_obfuscation(Obfuscation::Classic).expect("classic");
        let ipcl_like = pk
            .with_obfuscation(Obfuscation::Djn { exponent_bits: 512 })
            .expect("djn 512");
        assert!(
            pk.with_obfuscation(Obfuscation::Djn { exponent_bits: 100 })
                .is_err()
        );
        assert!(
            pk.with_obfuscation(Obfuscation::Djn {
                exponent_bits: 2048
            })
            .is_err()
        );
        let m = Integer::from(-987_654_321i64);
        let cts = [
            pk.encrypt(&m).expect("djn"),
            classic.encrypt(&m).expect("classic"),
            ipcl_like.encrypt(&m).expect("djn 512"),
            sk.encrypt(&m).expect("crt"),
            pk.encrypt_with_nonce(&m, &Integer::from(99))
                .expect("nonce"),
        ];
        for (i, c) in cts.iter().enumerate() {
            assert_eq!(sk.decrypt_signed(c), m, "mode {i}");
        }
        // Obfuscated encryptions of the same value are all different.
        for i in 0..cts.len() {
            for j in i + 1..cts.len() {
                assert_ne!(cts[i], cts[j], "modes {i} and {j}");
            }
        }
    }

    #[test]
    fn a_locally_derived_djn_base_works_and_differs() {
        let (pk, sk) = test_keypair_1024();
        let local = pk.with_fresh_djn_base(&mut test_rng(11));
        assert_ne!(local.djn_base(), pk.djn_base());
        assert_eq!(local.n(), pk.n());
        assert_eq!(
            sk.decrypt(&local.encrypt(&Integer::from(77)).expect("encrypt")),
            77
        );
    }

    #[test]
    fn pool_encrypts_with_precomputed_and_fresh_obfuscators() {
        let (pk, sk) = test_keypair_1024();
        let pool = ObfuscatorPool::new(pk.clone(), 4);
        assert!(pool.is_empty());
        assert_eq!(pool.fill(10), 4, "capacity bounds the fill");
        assert_eq!(pool.len(), 4);
        let cts: Vec<Ciphertext> = (0..6)
            .map(|i| pool.encrypt(&Integer::from(i)).expect("encrypt"))
            .collect();
        assert!(pool.is_empty());
        for (i, c) in cts.iter().enumerate() {
            assert_eq!(sk.decrypt(c), i as u64);
        }
        // Filling from another thread while this one encrypts.
        std::thread::scope(|s| {
            s.spawn(|| pool.fill(3));
            assert_eq!(
                sk.decrypt(&pool.encrypt(&Integer::from(5)).expect("encrypt")),
                5
            );
        });
    }

    #[test]
    fn decrypting_with_the_wrong_key_does_not_return_the_plaintext() {
        let (pk, _) = test_keypair_1024();
        let (_, other) = test_keypair_1024_b();
        let c = pk.encrypt(&Integer::from(31337)).expect("encrypt");
        assert_ne!(other.decrypt(&c), 31337);
    }

    #[test]
    fn keys_of_every_supported_size_work() {
        for (pk, sk) in [testing::test_keypair_2048(), testing::test_keypair_3072()] {
            let c = pk.encrypt_i64(-5).expect("encrypt");
            let d = pk.mul_i64(&c, 1 << 20).expect("mul");
            assert_eq!(sk.decrypt_i64(&d), Ok(-5 << 20), "{} bits", pk.key_bits());
            assert_eq!(sk.decrypt(&c), sk.decrypt_without_crt(&c));
            let back = PublicKey::from_bytes(&pk.to_bytes()).expect("round trip");
            assert_eq!(back, pk);
        }
    }

    #[test]
    fn ciphertext_operations_reject_non_units() {
        let (pk, _) = test_keypair_1024();
        let p = int(testing::P_1024_A);
        let bad = pk.ciphertext_from_integer(p).expect("in range");
        assert_eq!(
            pk.neg(&bad).err(),
            Some(Error::NotInvertible { what: "neg" })
        );
        assert!(pk.mul_i64(&bad, -3).is_err());
        let good = pk.encrypt_i64(1).expect("encrypt");
        assert_eq!(
            pk.xt_dot(&[-1, 2], 1, &[bad, good]).err(),
            Some(Error::NotInvertible { what: "xt_dot" })
        );
    }

    proptest! {
        #![proptest_config(cases(24))]

        #[test]
        fn homomorphic_identities(a in arb_plain(), b in arb_plain(), k in any::<i64>()) {
            let (pk, sk) = test_keypair_1024();
            let ca = pk.encrypt(&a).unwrap();
            let cb = pk.encrypt(&b).unwrap();
            let n = pk.n();
            let modn = |x: Integer| { let mut r = x % n; if r < 0 { r += n; } r };
            prop_assert_eq!(sk.decrypt(&pk.add(&ca, &cb)), modn(Integer::from(&a + &b)));
            prop_assert_eq!(sk.decrypt(&pk.sub(&ca, &cb).unwrap()), modn(Integer::from(&a - &b)));
            prop_assert_eq!(sk.decrypt(&pk.neg(&ca).unwrap()), modn(Integer::from(-&a)));
            prop_assert_eq!(sk.decrypt(&pk.add_plain(&ca, &b).unwrap()), modn(Integer::from(&a + &b)));
            prop_assert_eq!(sk.decrypt(&pk.mul_i64(&ca, k).unwrap()), modn(Integer::from(&a * k)));
            let big_k = Integer::from(&b * 3u32) - n;
            prop_assert_eq!(sk.decrypt(&pk.mul_integer(&ca, &big_k).unwrap()), modn(a.clone() * &big_k));
            prop_assert_eq!(sk.decrypt(&pk.rerandomize(&ca)), modn(a.clone()));
            let mut acc = ca.clone();
            pk.add_assign(&mut acc, &cb);
            prop_assert_eq!(acc, pk.add(&ca, &cb));
        }

        #[test]
        fn crt_and_textbook_decryption_agree(m in arb_plain()) {
            let (pk, sk) = test_keypair_1024();
            for c in [pk.encrypt(&m).unwrap(), sk.encrypt(&m).unwrap()] {
                prop_assert_eq!(sk.decrypt(&c), sk.decrypt_without_crt(&c));
            }
        }

        #[test]
        fn xt_dot_matches_per_element_products(
            rows in 0usize..12,
            cols in 1usize..4,
            seed in any::<u64>(),
            wide in any::<bool>(),
        ) {
            use rand::Rng;
            let (pk, sk) = test_keypair_1024();
            let mut rng = test_rng(seed);
            let d_plain: Vec<i64> = (0..rows).map(|_| rng.gen_range(-1000..1000)).collect();
            let x: Vec<i64> = (0..rows * cols)
                .map(|_| if wide { rng.gen_range(-(1i64 << 40)..(1i64 << 40)) } else { rng.gen_range(-3..4) })
                .collect();
            let d = pk.encrypt_i64_vec(&d_plain).unwrap();
            let got = sk.decrypt_i64_vec(&pk.xt_dot(&x, cols, &d).unwrap()).unwrap();
            let want: Vec<i64> = (0..cols)
                .map(|j| (0..rows).map(|i| x[i * cols + j] * d_plain[i]).sum())
                .collect();
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn xt_dot_with_many_rows_and_columns_uses_all_paths() {
        use rand::Rng;
        let (pk, sk) = test_keypair_1024();
        let mut rng = test_rng(5);
        for (rows, cols) in [(1500usize, 1usize), (600, 8)] {
            let d_plain: Vec<i64> = (0..rows)
                .map(|_| rng.gen_range(-1_000_000..1_000_000))
                .collect();
            let mut x: Vec<i64> = (0..rows * cols)
                .map(|_| i64::from(rng.r#gen::<i32>()))
                .collect();
            x[0] = i64::from(i32::MIN);
            let d = pk.encrypt_i64_vec(&d_plain).expect("encrypt");
            let got = sk
                .decrypt_i64_vec(&pk.xt_dot(&x, cols, &d).expect("dot"))
                .expect("decrypt");
            let want: Vec<i64> = (0..cols)
                .map(|j| (0..rows).map(|i| x[i * cols + j] * d_plain[i]).sum())
                .collect();
            assert_eq!(got, want, "{rows} x {cols}");
        }
    }

    #[test]
    fn vector_apis_check_lengths_and_compute_elementwise() {
        let (pk, sk) = test_keypair_1024();
        let a = pk.encrypt_i64_vec(&[1, -2, 3]).expect("encrypt");
        let b = pk.encrypt_i64_vec(&[10, 20, -30]).expect("encrypt");
        assert_eq!(
            sk.decrypt_i64_vec(&pk.add_vec(&a, &b).expect("add")),
            Ok(vec![11, 18, -27])
        );
        assert_eq!(
            sk.decrypt_i64_vec(&pk.sub_vec(&a, &b).expect("sub")),
            Ok(vec![-9, -22, 33])
        );
        assert_eq!(
            sk.decrypt_i64_vec(&pk.mul_i64_vec(&a, &[2, 3, -4]).expect("mul")),
            Ok(vec![2, -6, -12])
        );
        assert_eq!(
            sk.decrypt_i64_vec(&pk.mul_i64_broadcast(&a, -1).expect("mul")),
            Ok(vec![-1, 2, -3])
        );
        let plains = [Integer::from(5), Integer::from(-5), Integer::from(0)];
        assert_eq!(
            sk.decrypt_i64_vec(&pk.add_plain_vec(&a, &plains).expect("add")),
            Ok(vec![6, -7, 3])
        );
        assert_eq!(sk.decrypt_i64(&pk.sum(&a)), Ok(2));
        assert_eq!(sk.decrypt_i64(&pk.sum(&[])), Ok(0));
        assert_eq!(
            sk.decrypt_i64(&pk.weighted_sum(&a, &[1, 1, 1]).expect("ws")),
            Ok(2)
        );
        assert_eq!(
            sk.decrypt_i64(&pk.weighted_sum(&a, &[0, 0, 0]).expect("ws")),
            Ok(0)
        );
        let mut c = a.clone();
        pk.add_assign_vec(&mut c, &b).expect("add");
        assert_eq!(sk.decrypt_i64_vec(&c), Ok(vec![11, 18, -27]));
        let mismatch = Err(Error::DimensionMismatch {
            what: "add_vec right operand",
            expected: 3,
            got: 2,
        });
        assert_eq!(pk.add_vec(&a, &b[..2]), mismatch);
        assert!(matches!(
            pk.xt_dot(&[1, 2, 3], 2, &a),
            Err(Error::DimensionMismatch { .. })
        ));
        assert_eq!(pk.xt_dot(&[], 0, &[]), Ok(vec![]));
        let ms = [Integer::from(7), Integer::from(-7)];
        assert_eq!(
            sk.decrypt_vec(&pk.encrypt_vec(&ms).expect("enc")),
            vec![Integer::from(7), Integer::from(pk.n() - 7u32)]
        );
        assert_eq!(
            sk.decrypt_i64_vec(&sk.encrypt_vec(&ms).expect("enc")),
            Ok(vec![7, -7])
        );
        let rr = pk.rerandomize_vec(&a);
        assert_ne!(rr, a);
        assert_eq!(sk.decrypt_i64_vec(&rr), Ok(vec![1, -2, 3]));
    }

    #[test]
    fn decrypt_i64_reports_values_that_do_not_fit() {
        let (pk, sk) = test_keypair_1024();
        let c = pk.encrypt(&(Integer::from(1) << 70u32)).expect("encrypt");
        assert!(matches!(
            sk.decrypt_i64(&c),
            Err(Error::Overflow {
                what: "decrypt_i64",
                ..
            })
        ));
    }

    #[test]
    fn secret_key_debug_does_not_leak_primes() {
        let (_, sk) = test_keypair_1024();
        let shown = format!("{sk:?}");
        let p = int(testing::P_1024_A);
        assert!(!shown.contains(&p.to_string()[..20]), "{shown}");
        assert!(!shown.contains(&p.to_string_radix(16)[..20]), "{shown}");
    }
}

mod cross_check {
    //! Our implementation against `fast-paillier` (num-bigint backend, independent code).
    use super::*;
    use fast_paillier::backend::Integer as FpInt;

    fn to_fp(x: &Integer) -> FpInt {
        FpInt::from_str_radix(&x.to_string(), 10).expect("decimal")
    }

    fn from_fp(x: &FpInt) -> Integer {
        x.to_str_radix(10).parse().expect("decimal")
    }

    fn oracle() -> fast_paillier::DecryptionKey {
        fast_paillier::DecryptionKey::from_primes(
            to_fp(&int(testing::P_1024_A)),
            to_fp(&int(testing::Q_1024_A)),
        )
        .expect("oracle key")
    }

    proptest! {
        #![proptest_config(cases(16))]

        #[test]
        fn both_directions_and_identical_textbook_ciphertexts(m in any::<i64>(), r in 2u64..u64::MAX) {
            let (pk, sk) = test_keypair_1024();
            let dk = oracle();
            let ek = dk.encryption_key();
            prop_assert_eq!(from_fp(ek.n()), pk.n().clone());
            let m_int = Integer::from(m);
            // Ours → theirs (DJN obfuscator, and CRT secret-key encryption).
            for c in [pk.encrypt(&m_int).unwrap(), sk.encrypt(&m_int).unwrap()] {
                prop_assert_eq!(from_fp(&dk.decrypt(&to_fp(c.as_integer())).unwrap()), m_int.clone());
            }
            // Theirs → ours.
            let (theirs, _) = ek.encrypt_with_random(&mut test_rng(r), &to_fp(&m_int)).unwrap();
            let theirs = pk.ciphertext_from_integer(from_fp(&theirs)).unwrap();
            prop_assert_eq!(sk.decrypt_signed(&theirs), m_int.clone());
            // Same nonce, same ciphertext.
            let nonce = Integer::from(r) | 1u32;
            let ours = pk.encrypt_with_nonce(&m_int, &nonce).unwrap();
            let oracle_ct = ek.encrypt_with(&to_fp(&m_int), &to_fp(&nonce)).unwrap();
            prop_assert_eq!(ours.as_integer().clone(), from_fp(&oracle_ct));
            // A homomorphic result of ours decrypts the same with theirs.
            let doubled = pk.mul_i64(&ours, -2).unwrap();
            let expected = Integer::from(m) * -2;
            prop_assert_eq!(from_fp(&dk.decrypt(&to_fp(doubled.as_integer())).unwrap()), expected);
        }
    }
}

mod wire {
    use super::*;

    #[test]
    fn public_key_round_trips_through_bytes_postcard_and_json() {
        let (pk, sk) = test_keypair_1024();
        let bytes = pk.to_bytes();
        assert_eq!(bytes.len(), 8 + 128 + 256);
        let back = PublicKey::from_bytes(&bytes).expect("bytes");
        assert_eq!(back, pk);
        assert_eq!(back.djn_base(), pk.djn_base());
        // A decoded key encrypts for the original secret key.
        assert_eq!(
            sk.decrypt(&back.encrypt(&Integer::from(9)).expect("encrypt")),
            9
        );
        let post = postcard::to_allocvec(&pk).expect("postcard");
        assert_eq!(
            postcard::from_bytes::<PublicKey>(&post).expect("postcard"),
            pk
        );
        let json = serde_json::to_string(&pk).expect("json");
        assert_eq!(serde_json::from_str::<PublicKey>(&json).expect("json"), pk);
    }

    #[test]
    fn malformed_public_keys_are_rejected_with_reasons() {
        let (pk, _) = test_keypair_1024();
        let good = pk.to_bytes();
        let decode_err = |b: &[u8]| match PublicKey::from_bytes(b) {
            Err(Error::Decode { what, reason }) => format!("{what}: {reason}"),
            other => panic!("expected a decode error, got {other:?}"),
        };
        assert!(decode_err(&good[..5]).contains("shorter than the header"));
        assert!(decode_err(&good[..good.len() - 1]).contains("expected 392"));
        let mut longer = good.clone();
        longer.push(0);
        assert!(decode_err(&longer).contains("expected 392"));
        let mut magic = good.clone();
        magic[0] = b'X';
        assert!(decode_err(&magic).contains("magic"));
        let mut size = good.clone();
        size[4..8].copy_from_slice(&4096u32.to_be_bytes());
        assert!(decode_err(&size).contains("unsupported key size 4096"));
        let mut short_n = good.clone();
        short_n[8] = 0;
        assert!(decode_err(&short_n).contains("exactly 1024 bits"));
        let mut even_n = good.clone();
        even_n[8 + 127] &= 0xfe;
        assert!(decode_err(&even_n).contains("even"));
        let mut hs_one = good.clone();
        hs_one[8 + 128..].fill(0);
        hs_one[8 + 128 + 255] = 1;
        assert!(decode_err(&hs_one).contains("h_s"));
        let mut hs_big = good.clone();
        hs_big[8 + 128..].fill(0xff);
        assert!(decode_err(&hs_big).contains("h_s"));
        // JSON arrays longer than any key stop early.
        let huge = format!("[{}0]", "1,".repeat(5000));
        assert!(serde_json::from_str::<PublicKey>(&huge).is_err());
    }

    proptest! {
        #![proptest_config(cases(16))]

        #[test]
        fn ciphertexts_round_trip(values in prop::collection::vec(any::<i64>(), 0..6)) {
            let (pk, sk) = test_keypair_1024();
            let cts = pk.encrypt_i64_vec(&values).unwrap();
            let bytes = pk.ciphertexts_to_bytes(&cts);
            prop_assert_eq!(bytes.len(), values.len() * 256);
            let back = pk.ciphertexts_from_bytes(&bytes).unwrap();
            prop_assert_eq!(&back, &cts);
            prop_assert_eq!(sk.decrypt_i64_vec(&back).unwrap(), values);
            for c in &cts {
                prop_assert_eq!(&pk.ciphertext_from_bytes(&pk.ciphertext_to_bytes(c)).unwrap(), c);
            }
        }

        #[test]
        fn truncated_ciphertext_vectors_are_rejected(cut in 1usize..256) {
            let (pk, _) = test_keypair_1024();
            let bytes = pk.ciphertexts_to_bytes(&pk.encrypt_i64_vec(&[1, 2]).unwrap());
            let truncated = &bytes[..bytes.len() - cut];
            let whole = matches!(pk.ciphertexts_from_bytes(truncated), Err(Error::Decode { .. }));
            prop_assert!(whole);
            let single = matches!(pk.ciphertext_from_bytes(&bytes[..256 - cut]), Err(Error::Decode { .. }));
            prop_assert!(single);
        }
    }

    #[test]
    fn out_of_range_and_oversized_ciphertexts_are_rejected() {
        let (pk, _) = test_keypair_1024();
        let n2_bytes = {
            let mut b = vec![0u8; 256];
            pk.n_squared()
                .write_digits(&mut b, rug::integer::Order::Msf);
            b
        };
        let err = pk
            .ciphertext_from_bytes(&n2_bytes)
            .expect_err("n^2 is out of range");
        assert!(err.to_string().contains("not below n^2"), "{err}");
        assert!(pk.ciphertext_from_bytes(&[0xff; 256]).is_err());
        assert!(
            pk.ciphertext_from_bytes(&[0u8; 256])
                .expect_err("zero")
                .to_string()
                .contains("zero")
        );
        assert!(pk.ciphertext_from_bytes(&[1u8; 257]).is_err());
        let mut vec_bytes = pk.ciphertexts_to_bytes(&pk.encrypt_i64_vec(&[1, 2, 3]).expect("enc"));
        vec_bytes[512..].copy_from_slice(&n2_bytes);
        let err = pk
            .ciphertexts_from_bytes(&vec_bytes)
            .expect_err("third element out of range");
        assert!(err.to_string().contains("element 2"), "{err}");
        assert!(pk.ciphertext_from_integer(Integer::from(-1)).is_err());
        assert!(pk.ciphertext_from_integer(pk.n_squared().clone()).is_err());
    }
}

mod encodings {
    use super::*;

    proptest! {
        #![proptest_config(cases(64))]

        #[test]
        fn scaled_encoding_round_trips_within_half_an_ulp_of_the_scale(x in -1e12f64..1e12, frac in 0u32..40) {
            let m = encoding::encode_scaled(x, frac).unwrap();
            let back = encoding::decode_scaled(&m, frac);
            prop_assert!((back - x).abs() <= 0.5 * 2f64.powi(-(frac as i32)) + x.abs() * f64::EPSILON);
        }

        #[test]
        fn encrypted_scaled_values_round_trip(x in -1e6f64..1e6) {
            let (pk, sk) = test_keypair_1024();
            let c = pk.encrypt_f64(x, LR_FRAC_BITS).unwrap();
            let back = sk.decrypt_f64(&c, LR_FRAC_BITS).unwrap();
            prop_assert!((back - x).abs() <= 0.5 / f64::from(1u32 << LR_FRAC_BITS) + x.abs() * f64::EPSILON);
        }

        #[test]
        fn fate_fixed_point_round_trips_exactly(x in any::<f64>().prop_filter("finite", |v| v.is_finite() && v.abs() < 1e250)) {
            let (pk, _) = test_keypair_1024();
            let enc = FixedPointEncoder::new(pk);
            let e = enc.encode_f64(x).unwrap();
            prop_assert_eq!(enc.decode_f64(&e).unwrap(), x);
        }

        #[test]
        fn fate_fixed_point_ciphertext_arithmetic(a in -1e6f64..1e6, b in -1e6f64..1e6, k in -1e3f64..1e3) {
            let (pk, sk) = test_keypair_1024();
            let enc = FixedPointEncoder::new(pk);
            let ca = enc.encrypt(a).unwrap();
            let cb = enc.encrypt(b).unwrap();
            let tol = |v: f64| 1e-9 * v.abs().max(1.0);
            let sum = enc.decrypt(&sk, &enc.add(&ca, &cb).unwrap()).unwrap();
            prop_assert!((sum - (a + b)).abs() <= tol(a + b), "{} vs {}", sum, a + b);
            let plus = enc.decrypt(&sk, &enc.add_f64(&ca, b).unwrap()).unwrap();
            prop_assert!((plus - (a + b)).abs() <= tol(a + b));
            let prod = enc.decrypt(&sk, &enc.mul_f64(&ca, k).unwrap()).unwrap();
            prop_assert!((prod - a * k).abs() <= tol(a * k), "{} vs {}", prod, a * k);
            prop_assert_eq!(enc.decrypt(&sk, &enc.neg(&ca).unwrap()).unwrap(), -a);
        }
    }

    #[test]
    fn fate_exponent_semantics() {
        let (pk, _) = test_keypair_1024();
        let enc = FixedPointEncoder::new(pk.clone());
        // 0.1: frexp exponent −3, so exponent = floor((−3 − 53)/4) = −14 and the mantissa is
        // 0.1·16^14 held exactly (FATE fixedpoint coder).
        let e = enc.encode_f64(0.1).expect("0.1");
        assert_eq!(e.exponent, -14);
        assert_eq!(e.mantissa, Integer::from(0x0019_9999_9999_999a_u64));
        let zero = enc.encode_f64(0.0).expect("0");
        assert_eq!(
            (zero.mantissa.clone(), zero.exponent),
            (Integer::new(), -14)
        );
        let neg = enc.encode_f64(-1.5).expect("-1.5");
        assert_eq!(neg.exponent, -13);
        assert_eq!(
            Integer::from(pk.n() - &neg.mantissa),
            Integer::from(3) << 51u32
        );
        let int = enc.encode_i64(-7).expect("int");
        assert_eq!((enc.decode_i64(&int), int.exponent), (Ok(-7), 0));
        let prec = enc
            .encode_f64_with_precision(1.2345, 1e-3)
            .expect("precision");
        assert_eq!(prec.exponent, -3);
        assert_eq!(enc.decode_f64(&prec), Ok(5057.0 / 4096.0));
        assert_eq!(enc.decode_i64(&enc.encode_f64(-2.75).expect("enc")), Ok(-2));
        assert!(enc.encode_f64_with_precision(1.0, 0.0).is_err());
    }

    #[test]
    fn extremes_overflow_and_non_finite_values_are_errors() {
        let (pk, sk) = test_keypair_1024();
        let enc = FixedPointEncoder::new(pk.clone());
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(matches!(
                enc.encode_f64(bad),
                Err(Error::NotEncodable { .. })
            ));
            assert!(matches!(
                encoding::encode_scaled(bad, 23),
                Err(Error::NotEncodable { .. })
            ));
        }
        // f64::MAX keeps a 56-bit mantissa with exponent 242; forced to exponent 0 it needs
        // 1024 bits: above n/3 of a 1024-bit key, fine for 2048 bits.
        let e = enc.encode_f64(-f64::MAX).expect("natural exponent");
        assert_eq!((e.exponent, enc.decode_f64(&e)), (242, Ok(-f64::MAX)));
        assert!(matches!(
            enc.encode_f64_with_exponent(f64::MAX, 0),
            Err(Error::Overflow { .. })
        ));
        let (pk2048, _) = testing::test_keypair_2048();
        let enc2048 = FixedPointEncoder::new(pk2048);
        let e = enc2048
            .encode_f64_with_exponent(-f64::MAX, 0)
            .expect("fits 2048");
        assert_eq!(enc2048.decode_f64(&e), Ok(-f64::MAX));
        assert!(matches!(
            enc2048.encode_f64_with_exponent(1.0, -1000),
            Err(Error::Overflow { .. })
        ));
        // Subnormals survive.
        let tiny = enc.encode_f64(5e-324).expect("subnormal");
        assert_eq!(enc.decode_f64(&tiny), Ok(5e-324));
        assert!(matches!(
            pk.encrypt_f64(1e308, 23),
            Err(Error::Overflow { .. })
        ));
        assert!(matches!(
            encoding::encode_i64(2e12, 23),
            Err(Error::Overflow { .. })
        ));
        assert_eq!(encoding::encode_i64(-1.5, 23), Ok(-(3 << 22)));
        assert_eq!(encoding::encode_i64_vec(&[0.5, -0.25], 2), Ok(vec![2, -1]));
        // Ties round away from zero, as FATE's round.
        assert_eq!(encoding::encode_scaled(2.5, 0), Ok(Integer::from(3)));
        assert_eq!(encoding::encode_scaled(-2.5, 0), Ok(Integer::from(-3)));
        assert_eq!(encoding::encode_scaled(1e-30, 10), Ok(Integer::new()));
        // A decrypted value in the wrap-around band is an overflow, not a number.
        let half = Integer::from(pk.n() >> 1u32);
        let c = pk.encrypt(&half).expect("encrypt");
        assert!(matches!(
            sk.decrypt_f64(&c, 23),
            Err(Error::Overflow { .. })
        ));
        let wrapped = enc.decode_f64(&fate_crypto::encoding::EncodedNumber {
            mantissa: half,
            exponent: 0,
        });
        assert!(matches!(wrapped, Err(Error::Overflow { .. })));
        // Exponents too far apart to align.
        let a = enc.encrypt(1e200).expect("big");
        let b = enc.encrypt(1e-200).expect("small");
        assert!(matches!(enc.add(&a, &b), Err(Error::Overflow { .. })));
    }

    #[test]
    fn lr_scaling_through_the_gradient_kernel() {
        // d encoded with 23 fractional bits, X with 23: the product carries 46.
        let (pk, sk) = test_keypair_1024();
        let d = [0.25, -0.5, 0.125];
        let x = [[1.5, -2.0], [0.75, 3.0], [-1.0, 0.5]];
        let cd = pk.encrypt_f64_vec(&d, LR_FRAC_BITS).expect("encrypt");
        let xi: Vec<i64> = x
            .iter()
            .flatten()
            .map(|&v| encoding::encode_i64(v, LR_FRAC_BITS).expect("x"))
            .collect();
        let g = sk
            .decrypt_f64_vec(&pk.xt_dot(&xi, 2, &cd).expect("dot"), 2 * LR_FRAC_BITS)
            .expect("decode");
        let want = [
            0.25 * 1.5 - 0.5 * 0.75 - 0.125,
            0.25 * -2.0 - 0.5 * 3.0 + 0.125 * 0.5,
        ];
        for (got, want) in g.iter().zip(want) {
            assert!((got - want).abs() < 1e-9, "{got} vs {want}");
        }
        let shifted = pk
            .add_f64_vec(&cd, &[1.0, 1.0, 1.0], LR_FRAC_BITS)
            .expect("add");
        assert_eq!(
            sk.decrypt_f64_vec(&shifted, LR_FRAC_BITS),
            Ok(vec![1.25, 0.5, 1.125])
        );
    }
}

mod packing {
    use super::*;

    #[test]
    fn gh_packer_matches_fate_shift_bit_and_pack_num() {
        // breast: 569 samples, 1024-bit key → shift_bit 63, total_pack_num 1022 // 126 = 8.
        let gh = GhPacker::binary(1024, 569).expect("packer");
        assert_eq!(gh.shift_bit(), 63);
        assert_eq!(gh.squeeze_capacity(), 8);
        assert_eq!(
            GhPacker::binary(1024, 30_000).expect("packer").shift_bit(),
            68
        );
        assert!(GhPacker::binary(1024, 0).is_err());
    }

    proptest! {
        #![proptest_config(cases(48))]

        #[test]
        fn pack_unpack_round_trip(values in prop::collection::vec(0.0f64..100.0, 1..12)) {
            let scheme = PackingScheme::new(1024, 30, 100.0, 1).unwrap();
            let take = values.len().min(scheme.capacity());
            let packed = scheme.pack(&values[..take]).unwrap();
            let back = scheme.unpack(&packed, take).unwrap();
            for (a, b) in values.iter().zip(&back) {
                prop_assert!((a - b).abs() <= 0.5 / f64::from(1u32 << 30));
            }
        }

        #[test]
        fn encrypted_gh_sums_decode(gh in prop::collection::vec((-1.0f64..=1.0, 0.0f64..=1.0), 1..20)) {
            let (pk, sk) = test_keypair_1024();
            let packer = GhPacker::binary(1024, 1000).unwrap();
            let (g, h): (Vec<f64>, Vec<f64>) = gh.iter().copied().unzip();
            let cts = pk.encrypt_vec(&packer.pack_vec(&g, &h).unwrap()).unwrap();
            let total = sk.decrypt(&pk.sum(&cts));
            let (gs, hs) = packer.unpack_sum(&total, gh.len() as u64).unwrap();
            prop_assert!((gs - g.iter().sum::<f64>()).abs() < 1e-9);
            prop_assert!((hs - h.iter().sum::<f64>()).abs() < 1e-9);
        }
    }

    #[test]
    fn squeezed_split_infos_unpack_in_order() {
        let (pk, sk) = test_keypair_1024();
        let packer = GhPacker::binary(1024, 569).expect("packer");
        // Four "histogram bins", each the sum of a few packed samples.
        let bins: Vec<Vec<(f64, f64)>> = vec![
            vec![(0.5, 0.25), (-1.0, 1.0)],
            vec![(1.0, 0.0)],
            vec![(-0.25, 0.5), (0.75, 0.125), (-1.0, 0.9)],
            vec![(0.0, 0.0)],
        ];
        let sums: Vec<Ciphertext> = bins
            .iter()
            .map(|bin| {
                let cts: Vec<Ciphertext> = bin
                    .iter()
                    .map(|&(g, h)| pk.encrypt(&packer.pack(g, h).expect("pack")).expect("enc"))
                    .collect();
                pk.sum(&cts)
            })
            .collect();
        let squeezed = pk
            .pack_squeeze_vec(&sums, packer.pair_bits(), packer.squeeze_capacity())
            .expect("squeeze");
        assert_eq!(squeezed.len(), 1);
        let counts: Vec<u64> = bins.iter().map(|b| b.len() as u64).collect();
        let pairs = packer
            .unpack_squeezed(&sk.decrypt(&squeezed[0]), &counts)
            .expect("unpack");
        for (bin, (g, h)) in bins.iter().zip(pairs) {
            let (eg, eh) = bin
                .iter()
                .fold((0.0, 0.0), |(a, b), &(g, h)| (a + g, b + h));
            assert!(
                (g - eg).abs() < 1e-12 && (h - eh).abs() < 1e-12,
                "{g},{h} vs {eg},{eh}"
            );
        }
        let too_many = vec![sums[0].clone(); packer.squeeze_capacity() + 1];
        assert!(pk.pack_squeeze(&too_many, packer.pair_bits()).is_err());
        assert!(pk.pack_squeeze(&[], u32::MAX).is_err());
        assert!(pk.pack_squeeze_vec(&sums, 126, 0).is_err());
    }

    #[test]
    fn packing_errors_are_reported() {
        let scheme = PackingScheme::with_slot_bits(1024, 10, 20).expect("scheme");
        assert_eq!(scheme.capacity(), 51);
        assert!(matches!(
            scheme.pack(&[-1.0]),
            Err(Error::InvalidArgument { .. })
        ));
        assert!(matches!(
            scheme.pack(&[2048.0]),
            Err(Error::Overflow { .. })
        ));
        assert!(matches!(
            scheme.pack(&vec![1.0; 52]),
            Err(Error::DimensionMismatch { .. })
        ));
        let wide = Integer::from(1) << 40u32;
        assert!(matches!(
            scheme.unpack(&wide, 2),
            Err(Error::Overflow { .. })
        ));
        assert!(PackingScheme::with_slot_bits(1024, 10, 1023).is_err());
        assert!(PackingScheme::new(1024, 10, f64::NAN, 1).is_err());
        let gh = GhPacker::binary(1024, 10).expect("packer");
        assert!(gh.pack(-1.5, 0.0).is_err());
        assert!(gh.pack_vec(&[0.0], &[]).is_err());
    }
}

mod psi_primitive {
    use super::*;

    fn point(hex: &str) -> psi::Point {
        psi::point_from_slice(&hex_bytes(hex)).expect("32 bytes")
    }

    #[test]
    fn matches_fate_utils_vectors() {
        // Produced by FATE's `fate_utils` wheel: Curve25519(bytes(range(1, 33))) and
        // Curve25519(bytes([7] * 32)).
        let a = EcdhSecret::from_bytes(std::array::from_fn(|i| i as u8 + 1));
        let b = EcdhSecret::from_bytes([7; 32]);
        let ea = a.encrypt_id(b"id-0001");
        assert_eq!(
            ea,
            point("2d0238641a55ff537216bed52c9b7f6752a535e09e30666a33fbb81782779b23")
        );
        let double = point("ab9168b413459fc614ab2521915392163b97bcfa917e7720ec7455438a354c56");
        assert_eq!(b.diffie_hellman(&ea), double);
        assert_eq!(a.diffie_hellman(&b.encrypt_id(b"id-0001")), double);
        assert_eq!(
            a.encrypt_id(b""),
            point("45413665788f84c16632765d00a52044dfc23d71e48a8f1f448ca514127ab752")
        );
    }

    proptest! {
        #![proptest_config(cases(32))]

        #[test]
        fn double_encryption_commutes(id in prop::collection::vec(any::<u8>(), 0..40), sa in any::<u64>(), sb in any::<u64>()) {
            let a = EcdhSecret::random(&mut test_rng(sa));
            let b = EcdhSecret::random(&mut test_rng(sb.wrapping_add(1) ^ sa));
            prop_assert_eq!(a.diffie_hellman(&b.encrypt_id(&id)), b.diffie_hellman(&a.encrypt_id(&id)));
        }
    }

    #[test]
    fn batches_equal_single_calls_and_ids_separate() {
        let a = EcdhSecret::random(&mut test_rng(1));
        let b = EcdhSecret::random(&mut test_rng(2));
        let ids = ["alice", "bob", "carol", "alice"];
        let ea = a.encrypt_ids(&ids);
        assert_eq!(ea[1], a.encrypt_id(b"bob"));
        assert_eq!(ea[0], ea[3]);
        assert_ne!(ea[0], ea[1]);
        let eba = b.diffie_hellman_batch(&ea);
        assert_eq!(eba[2], b.diffie_hellman(&ea[2]));
        assert_eq!(eba, a.diffie_hellman_batch(&b.encrypt_ids(&ids)));
        assert_eq!(
            psi::hash_to_point(b"x").to_bytes(),
            psi::hash_to_point(b"x").to_bytes()
        );
        assert!(matches!(
            psi::point_from_slice(&[0u8; 31]),
            Err(Error::Decode { .. })
        ));
        assert_eq!(format!("{a:?}"), "EcdhSecret(..)");
    }
}

mod secure_aggregation {
    use super::*;

    fn parties(n: u32) -> Vec<SecAggKeyPair> {
        (0..n)
            .map(|rank| SecAggKeyPair::generate(rank, &mut test_rng(100 + u64::from(rank))))
            .collect()
    }

    fn maskers(ps: &[SecAggKeyPair]) -> Vec<secagg::Masker> {
        ps.iter()
            .map(|me| {
                let peers: Vec<(u32, [u8; 32])> = ps
                    .iter()
                    .filter(|p| p.rank() != me.rank())
                    .map(|p| (p.rank(), p.public_key()))
                    .collect();
                me.masker(&peers).expect("masker")
            })
            .collect()
    }

    #[test]
    fn masks_cancel_in_the_sum() {
        let ps = parties(4);
        let ms = maskers(&ps);
        let inputs: Vec<Vec<f64>> = (0..4)
            .map(|r| vec![0.5 * f64::from(r), -1.25, 1e6 + f64::from(r)])
            .collect();
        for round in [0u64, 1, 99] {
            let masked: Vec<Vec<u64>> = ms
                .iter()
                .zip(&inputs)
                .map(|(m, x)| m.mask_f64(round, x, 24).expect("mask"))
                .collect();
            // Each masked vector hides its input.
            for (x, y) in inputs.iter().zip(&masked) {
                let plain: Vec<u64> = x
                    .iter()
                    .map(|&v| encoding::encode_i64(v, 24).expect("enc") as u64)
                    .collect();
                assert_ne!(&plain, y);
            }
            let refs: Vec<&[u64]> = masked.iter().map(Vec::as_slice).collect();
            let sum = secagg::decode_f64(&secagg::aggregate(&refs).expect("aggregate"), 24);
            assert_eq!(sum, vec![3.0, -5.0, 4e6 + 6.0], "round {round}");
        }
        // Different rounds give different masks.
        let mut r0 = vec![0u64; 4];
        let mut r1 = vec![0u64; 4];
        ms[0].mask_u64(0, &mut r0);
        ms[0].mask_u64(1, &mut r1);
        assert_ne!(r0, r1);
    }

    #[test]
    fn key_agreement_errors() {
        let ps = parties(2);
        let me = &ps[0];
        let own = me.masker(&[(0, ps[1].public_key())]).expect_err("own rank");
        assert!(matches!(own, Error::KeyAgreement { rank: 0, .. }));
        let dup = me
            .masker(&[(1, ps[1].public_key()), (1, ps[1].public_key())])
            .expect_err("duplicate");
        assert!(dup.to_string().contains("twice"), "{dup}");
        let low_order = me.masker(&[(1, [0u8; 32])]).expect_err("low order");
        assert!(low_order.to_string().contains("low-order"), "{low_order}");
        let a: &[u64] = &[1, 2];
        let b: &[u64] = &[1];
        assert!(matches!(
            secagg::aggregate(&[a, b]),
            Err(Error::DimensionMismatch { .. })
        ));
        assert_eq!(secagg::aggregate(&[]), Ok(vec![]));
    }
}

mod bench_entry {
    #[test]
    fn rejects_unsupported_key_sizes_without_running() {
        let mut records = 0;
        let result = fate_crypto::bench::run(1000, 0.0, &mut |_| records += 1);
        assert_eq!(
            result,
            Err(fate_crypto::Error::UnsupportedKeySize { bits: 1000 })
        );
        assert_eq!(records, 0);
        assert!(fate_crypto::bench::run(1024, f64::NAN, &mut |_| {}).is_err());
    }
}

/// Regression: the first encryptions with a fresh key run in parallel while the fixed-base table
/// is built (itself in parallel). Building it inside `OnceLock::get_or_init` could deadlock a
/// rayon worker that picked up another encryption of the same key while waiting.
#[test]
fn first_parallel_encryptions_with_a_fresh_key_do_not_deadlock() {
    let (pk, sk) = test_keypair_1024();
    for seed in 0..3u64 {
        let fresh = pk.with_fresh_djn_base(&mut test_rng(seed));
        let values: Vec<f64> = (0..64).map(|i| i as f64 - 32.0).collect();
        let (tx, rx) = std::sync::mpsc::channel();
        let job = fresh.clone();
        std::thread::spawn(move || {
            let _ = tx.send(job.encrypt_f64_vec(&values, 10));
        });
        let cts = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("parallel encryption with a fresh key did not finish")
            .unwrap();
        assert_eq!(sk.decrypt_f64(&cts[5], 10).unwrap(), -27.0);
    }
}
