//! Checking a spec never panics, whatever the bytes: arbitrary text, and
//! valid specs with bytes deleted, duplicated or replaced. Nor does loading
//! a plan file, even one whose edited body carries a matching checksum.

use proptest::prelude::*;
use sha2::{Digest, Sha256};
use sluice_compiler::{check, Captures, Plan, SourceFile};

fn platform() -> String {
    let path = format!("{}/../specs/platform.yaml", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).unwrap()
}

#[derive(Debug, Clone)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, String),
    Replace(usize, char),
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for edit in edits {
        let n = bytes.len().max(1);
        match edit {
            Edit::Delete(at, len) => {
                let at = at % n;
                let end = (at + len).min(bytes.len());
                bytes.drain(at.min(end)..end);
            }
            Edit::Insert(at, s) => {
                let at = at % (bytes.len() + 1);
                bytes.splice(at..at, s.bytes());
            }
            Edit::Replace(at, c) => {
                if !bytes.is_empty() {
                    let at = at % bytes.len();
                    bytes[at] = *c as u8;
                }
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn edit() -> impl Strategy<Value = Edit> {
    let yamlish = prop::sample::select(vec![
        "{",
        "}",
        "[",
        "]",
        ":",
        "- ",
        "\n",
        "  ",
        "&a ",
        "*a",
        "<<: ",
        "!!int ",
        "'",
        "\"",
        "#",
        "{*x}",
        "{",
        "/",
        "0",
        "-1",
        "~",
        "\t",
        "---\n",
        "weight: ",
        "to: ",
        "methods: [",
    ]);
    prop_oneof![
        (any::<usize>(), 1usize..40).prop_map(|(a, l)| Edit::Delete(a, l)),
        (any::<usize>(), yamlish).prop_map(|(a, s)| Edit::Insert(a, s.to_owned())),
        (any::<usize>(), prop::char::range(' ', '~')).prop_map(|(a, c)| Edit::Replace(a, c)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,400}") {
        let _ = check(SourceFile::new("fuzz.yaml", text));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = check(SourceFile::from_bytes("fuzz.yaml", bytes.clone()));
        let _ = Plan::from_bytes(&bytes);
    }

    #[test]
    fn mutated_specs_never_panic(edits in prop::collection::vec(edit(), 1..6)) {
        let text = apply(&platform(), &edits);
        let checked = check(SourceFile::new("mutated.yaml", text));
        // Either it is clean and compiled, or it says why, with a location when it has a document.
        prop_assert_eq!(checked.plan.is_some(), !checked.has_errors());
    }

    #[test]
    fn mutated_plans_are_refused_or_valid(at in any::<usize>(), byte in any::<u8>()) {
        let plan = check(SourceFile::new("p.yaml", platform())).plan.unwrap();
        let mut bytes = plan.to_bytes();
        let i = at % bytes.len();
        bytes[i] = byte;
        let _ = Plan::from_bytes(&bytes);
    }

    #[test]
    fn edited_plan_bodies_with_a_good_checksum_never_panic(
        edits in prop::collection::vec((any::<usize>(), any::<u8>(), 0u8..4), 1..6),
    ) {
        let plan = check(SourceFile::new("p.yaml", platform())).plan.unwrap();
        let bytes = plan.to_bytes();
        let newline = bytes.iter().position(|&b| b == b'\n').unwrap();
        let (header, mut body) = (&bytes[..newline], bytes[newline + 1..].to_vec());
        for (at, byte, kind) in edits {
            let i = at % (body.len() + 1);
            match kind {
                0 if i < body.len() => body[i] = byte,
                1 if i < body.len() => { body.remove(i); }
                2 => body.insert(i, byte),
                _ => body.truncate(i),
            }
        }
        let digest: String = Sha256::digest(&body).iter().map(|b| format!("{b:02x}")).collect();
        let format = header.split(|&b| b == b' ').nth(1).unwrap();
        let mut file = b"sluice-plan ".to_vec();
        file.extend_from_slice(format);
        file.extend_from_slice(format!(" sha256:{digest}\n").as_bytes());
        file.extend_from_slice(&body);
        if let Ok(loaded) = Plan::from_bytes(&file) {
            // Whatever it holds, a plan that loads routes without panicking.
            let mut captures = Captures::new();
            for path in ["/", "/v1/contacts/42", "/a/b/c/d"] {
                for listener in 0..loaded.listeners.len() {
                    if let Some(r) = loaded.lookup_parts(listener, "api.example.test", b"GET", path, &mut captures) {
                        let _ = loaded.params(r, path, &captures).count();
                    }
                }
            }
        }
    }
}
