//! Every fuzz target (`tgparser::fuzzing`) on its saved corpus (`fuzz/corpus/<target>/`: the
//! seeds, and every input a campaign found worth keeping) and on a few thousand inputs made
//! from it here (random bytes, mutations of corpus entries, texts of the characters that
//! break parsers), in stable `cargo test`: a regression the nightly campaign would find is
//! caught here first. `FUZZ_SEED` replays a run; `FUZZ_INPUTS` sets the number per target.

use std::path::Path;

use tgparser::fuzzing::{TARGETS, run};

/// A deterministic generator (splitmix64).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Pieces that break parsers of text: markup, query syntax, quotes, the match markers, astral
/// and combining characters, scripts without spaces, control characters.
const PIECES: &[&str] = &[
    "<",
    ">",
    "&",
    "&amp;",
    "&#",
    ";",
    "\"",
    "'",
    "*",
    "(",
    ")",
    ":",
    "/",
    "\\",
    "@",
    "+",
    "-",
    " ",
    "\t",
    "\n",
    "\r",
    "\0",
    "in",
    "AND",
    "OR",
    "NOT",
    "NEAR",
    "^",
    "$",
    "[",
    "]",
    "{",
    "}",
    "|",
    "?",
    "<b>",
    "</b>",
    "<a href=\"",
    "\u{1}",
    "\u{2}",
    "\u{FFFD}",
    "𝔞",
    "🚀",
    "👍🏽",
    "\u{301}",
    "\u{200D}",
    "\u{FE0F}",
    "比特币",
    "東京都",
    "ราคา",
    "비트코인",
    "ё",
    "ß",
    "İ",
    "ﷺ",
    "=",
    "[store]",
    "dir = ",
    "t.me/",
    "+",
    "joinchat/",
    "tg://join?invite=",
    "https://",
];

fn random_text(rng: &mut Rng) -> Vec<u8> {
    let n = rng.below(40);
    let mut s = String::new();
    for _ in 0..n {
        s.push_str(PIECES[rng.below(PIECES.len())]);
        if rng.below(3) == 0 {
            s.push(char::from(b'a' + rng.below(26) as u8));
        }
    }
    s.into_bytes()
}

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(8) {
        match rng.below(4) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(v.len() + 1);
                let piece = PIECES[rng.below(PIECES.len())].as_bytes();
                v.splice(i..i, piece.iter().copied());
            }
            2 if !v.is_empty() => {
                let i = rng.below(v.len());
                let j = (i + rng.below(16)).min(v.len());
                v.drain(i..j);
            }
            _ => {
                let i = rng.below(v.len() + 1);
                v.insert(i, rng.next() as u8);
            }
        }
    }
    v
}

/// A message as Telegram serializes it, for the TL target's corpus (its saved corpus holds
/// what campaigns found; this keeps a valid one in it whatever the layer).
fn tl_seed() -> Vec<u8> {
    use grammers_client::tl::{Serializable, enums, types};
    let m = enums::Message::Message(types::Message {
        out: false,
        mentioned: false,
        media_unread: false,
        silent: false,
        post: true,
        from_scheduled: false,
        legacy: false,
        edit_hide: false,
        pinned: false,
        noforwards: false,
        invert_media: false,
        offline: false,
        video_processing_pending: false,
        paid_suggested_post_stars: false,
        paid_suggested_post_ton: false,
        id: 42,
        from_id: None,
        from_boosts_applied: None,
        from_rank: None,
        peer_id: types::PeerChannel { channel_id: 7 }.into(),
        saved_peer_id: None,
        fwd_from: None,
        via_bot_id: None,
        via_business_bot_id: None,
        guestchat_via_from: None,
        reply_to: None,
        date: 1_700_000_000,
        message: "Bitcoin 🚀 比特币".into(),
        media: None,
        reply_markup: None,
        entities: Some(vec![
            types::MessageEntityBold {
                offset: 0,
                length: 7,
            }
            .into(),
        ]),
        views: Some(10),
        forwards: None,
        replies: None,
        edit_date: None,
        post_author: None,
        grouped_id: None,
        reactions: None,
        restriction_reason: None,
        ttl_period: None,
        quick_reply_shortcut_id: None,
        effect: None,
        factcheck: None,
        report_delivery_until_date: None,
        paid_message_stars: None,
        suggested_post: None,
        schedule_repeat_period: None,
        summary_from_language: None,
        rich_message: None,
    });
    m.to_bytes()
}

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    if target == "tl_message" {
        out.push(tl_seed());
    }
    assert!(!out.is_empty(), "{} has no seeds", dir.display());
    out
}

#[test]
fn every_fuzz_target_survives_its_corpus_and_thousands_of_inputs_made_from_it() {
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed);
    let inputs: usize = std::env::var("FUZZ_INPUTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3_000);
    let valid = |html: &str| fake_telegram::botapi::html::visible(html);
    for target in TARGETS {
        let seeds = corpus(target);
        for s in &seeds {
            run(target, s, &valid);
        }
        let mut rng = Rng(seed ^ target.len() as u64);
        for i in 0..inputs {
            let data = match i % 3 {
                0 => (0..rng.below(256)).map(|_| rng.next() as u8).collect(),
                1 => random_text(&mut rng),
                _ => {
                    let from = rng.below(seeds.len());
                    mutate(&mut rng, &seeds[from])
                }
            };
            let caught = std::panic::catch_unwind(|| run(target, &data, &valid));
            assert!(
                caught.is_ok(),
                "{target} failed on input {i} (FUZZ_SEED={seed}): {:?}",
                String::from_utf8_lossy(&data)
            );
        }
        println!("{target}: {} seeds, {inputs} made inputs", seeds.len());
    }
}

/// The Bot API update target's hand-written seeds (`*.json`) are updates teloxide reads: a
/// seed it refused would leave the campaign mutating JSON that never reaches the bot's code.
#[test]
fn the_bot_update_seeds_are_updates_teloxide_reads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/bot_update");
    let mut read = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "json") {
            let data = std::fs::read(&path).unwrap();
            if let Err(e) = serde_json::from_slice::<teloxide::types::Update>(&data) {
                panic!("{}: {e}", path.display());
            }
            read += 1;
        }
    }
    assert!(read >= 10, "{read} seeds");
}
