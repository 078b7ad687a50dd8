//! Encryption context: the vectors in `docs/vectors/context.json` (made by the
//! independent Python encoder in `tests/python/fk1_context.py`), and properties of
//! the encoding over arbitrary maps.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use fleetkey_crypto::envelope::context::{MAX_ENCODED_LEN, encode, from_pairs};
use proptest::prelude::*;
use serde_json::Value;

const VECTOR_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../docs/vectors/context.json"
);

fn pairs(v: &Value) -> Vec<(String, String)> {
    v["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_owned(),
                p[1].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn vectors_from_the_docs_encode_and_refuse_alike() {
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(VECTOR_FILE).unwrap()).unwrap();
    let valid = doc["valid"].as_array().unwrap();
    let refused = doc["refused"].as_array().unwrap();
    assert!(valid.len() >= 10 && refused.len() >= 5);
    for v in valid {
        let map = from_pairs(pairs(v)).unwrap_or_else(|e| panic!("{}: {e}", v["name"]));
        assert_eq!(
            hex::encode(encode(&map).unwrap()),
            v["encoded"].as_str().unwrap(),
            "{}",
            v["name"]
        );
    }
    for v in refused {
        // Refused while building the map (duplicates, bounds) or when encoding.
        let r = from_pairs(pairs(v)).and_then(|m| encode(&m));
        assert!(r.is_err(), "{} was accepted", v["name"]);
    }
}

proptest! {
    #[test]
    fn any_order_gives_one_encoding(
        map in proptest::collection::btree_map("\\PC{1,12}", "\\PC{0,20}", 0..20),
        seed in any::<u64>(),
    ) {
        let mut list: Vec<(String, String)> = map.clone().into_iter().collect();
        // A deterministic shuffle from the seed.
        let mut s = seed | 1;
        for i in (1..list.len()).rev() {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            list.swap(i, usize::try_from(s % (i as u64 + 1)).unwrap());
        }
        let a = encode(&map).unwrap();
        let b = encode(&from_pairs(list).unwrap()).unwrap();
        prop_assert_eq!(&a, &b);
        prop_assert!(a.len() <= MAX_ENCODED_LEN);
        prop_assert_eq!(a.is_empty(), map.is_empty());
    }

    #[test]
    fn distinct_maps_encode_distinctly(
        a in proptest::collection::btree_map("\\PC{1,4}", "\\PC{0,4}", 0..4),
        b in proptest::collection::btree_map("\\PC{1,4}", "\\PC{0,4}", 0..4),
    ) {
        prop_assert_eq!(a == b, encode(&a).unwrap() == encode(&b).unwrap());
    }
}
