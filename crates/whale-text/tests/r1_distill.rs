//! The DeepSeek-R1-Distill-Qwen-7B tokenizer fixture: all 52 golden strings (ids, ids with BOS,
//! decoded text) and the 3 golden chats (rendered text byte for byte, ids), from tokenizer.json
//! and from the GGUF header alone; special ids; streaming decoding.

mod common;

use common::{golden, gguf_tokenizer, hf_tokenizer, ids};
use whale_text::{ChatMessage, RenderOptions, Tokenizer};

fn check_strings(tok: &Tokenizer, which: &str) {
    let strings = golden()["strings"].as_array().unwrap();
    assert_eq!(strings.len(), 52);
    let mut failures = Vec::new();
    for s in strings {
        let text = s["text"].as_str().unwrap();
        let want = ids(&s["ids"]);
        let got = tok.encode(text, false).unwrap();
        if got != want {
            failures.push(format!("{text:?}: ids {got:?} != {want:?}"));
            continue;
        }
        let got_bos = tok.encode(text, true).unwrap();
        if got_bos != ids(&s["ids_with_bos"]) {
            failures.push(format!("{text:?}: ids_with_bos {got_bos:?}"));
        }
        let decoded = tok.decode(&want, false).unwrap();
        if decoded != s["decoded"].as_str().unwrap() {
            failures.push(format!("{text:?}: decoded {decoded:?}"));
        }
        let tokens: Vec<String> = want.iter().map(|&i| tok.id_to_token(i).unwrap()).collect();
        let want_tokens: Vec<String> =
            serde_json::from_value(s["tokens"].clone()).unwrap();
        if tokens != want_tokens {
            failures.push(format!("{text:?}: tokens {tokens:?}"));
        }
    }
    assert!(failures.is_empty(), "{which}: {} failures:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn golden_strings_from_tokenizer_json() {
    check_strings(hf_tokenizer(), "tokenizer.json");
}

#[test]
fn golden_strings_from_gguf() {
    check_strings(gguf_tokenizer(), "GGUF");
}

fn check_special(tok: &Tokenizer, vocab_size: usize) {
    assert_eq!(tok.bos_id(), Some(151646));
    assert_eq!(tok.bos_token(), Some("<｜begin▁of▁sentence｜>"));
    assert_eq!(tok.eos_ids().iter().copied().collect::<Vec<_>>(), vec![151643]);
    assert_eq!(tok.eos_token(), Some("<｜end▁of▁sentence｜>"));
    assert!(tok.is_eos(151643));
    assert_eq!(tok.pad_id(), Some(151654));
    assert_eq!(tok.think_start_id(), Some(151648));
    assert_eq!(tok.think_end_id(), Some(151649));
    assert_eq!(tok.token_to_id("<tool_call>"), Some(151657));
    assert_eq!(tok.id_to_token(151644).as_deref(), Some("<｜User｜>"));
    assert_eq!(tok.id_to_token(9707).as_deref(), Some("Hello"));
    assert_eq!(tok.vocab_size(), vocab_size);
    assert!(tok.is_special(151643) && !tok.is_special(151648) && !tok.is_special(9707));
    assert!(tok.chat_template().unwrap().contains("<｜Assistant｜>"));
    // skip_special drops control tokens but keeps user-defined ones like <think>.
    let ids = tok.encode("<｜User｜>hi<think>x</think><｜end▁of▁sentence｜>", true).unwrap();
    assert_eq!(tok.decode(&ids, true).unwrap(), "hi<think>x</think>");
}

#[test]
fn special_tokens_from_tokenizer_json() {
    check_special(hf_tokenizer(), 151665);
}

#[test]
fn special_tokens_from_gguf() {
    // The GGUF keeps its 399 unused [PAD] rows: ids exist for the whole embedding matrix.
    check_special(gguf_tokenizer(), 152064);
    let tok = gguf_tokenizer();
    assert_eq!(tok.id_to_token(152063).as_deref(), Some("[PAD152063]"));
    // ... but they never match text.
    assert_ne!(tok.encode("[PAD152063]", false).unwrap(), vec![152063]);
}

fn check_chats(tok: &Tokenizer, which: &str) {
    let chats = golden()["chats"].as_array().unwrap();
    assert_eq!(chats.len(), 3);
    for (i, chat) in chats.iter().enumerate() {
        let messages: Vec<ChatMessage> = serde_json::from_value(chat["messages"].clone()).unwrap();
        assert!(chat["add_generation_prompt"].as_bool().unwrap());
        let opts = RenderOptions { add_generation_prompt: true, ..Default::default() };
        let (rendered, got_ids) = tok.encode_chat(&messages, &opts).unwrap();
        assert_eq!(rendered.text, chat["text"].as_str().unwrap(), "{which}: chat {i} text");
        assert_eq!(got_ids, ids(&chat["ids"]), "{which}: chat {i} ids");
        // This early R1 template does not prefill <think>.
        assert!(!rendered.think_prefilled);

        // Without the generation prompt the trailing assistant opener is gone (the template
        // writes none after a tool message anyway).
        let plain = tok.apply_chat_template(&messages, &RenderOptions::default()).unwrap();
        let expected = chat["text"].as_str().unwrap();
        let expected = expected.strip_suffix("<｜Assistant｜>").unwrap_or(expected);
        assert_eq!(plain.text, expected, "{which}: chat {i} without generation prompt");
    }
}

#[test]
fn golden_chats_from_tokenizer_json() {
    check_chats(hf_tokenizer(), "tokenizer.json");
}

#[test]
fn golden_chats_from_gguf() {
    check_chats(gguf_tokenizer(), "GGUF");
}

#[test]
fn chat_template_is_the_same_in_both_sources() {
    assert_eq!(hf_tokenizer().chat_template(), gguf_tokenizer().chat_template());
}

/// Feeding ids one at a time reassembles exactly `decode`, and no chunk carries half a
/// character.
#[test]
fn streaming_reassembles_every_golden_string() {
    for tok in [hf_tokenizer(), gguf_tokenizer()] {
        for s in golden()["strings"].as_array().unwrap() {
            let all = ids(&s["ids_with_bos"]);
            for skip in [false, true] {
                let mut dec = tok.stream_decoder(skip);
                let mut out = String::new();
                for &id in &all {
                    if let Some(piece) = dec.step(id).unwrap() {
                        assert!(!piece.contains('\u{FFFD}'), "half a char in {piece:?}");
                        out.push_str(&piece);
                    }
                }
                if let Some(rest) = dec.flush().unwrap() {
                    out.push_str(&rest);
                }
                assert_eq!(out, tok.decode(&all, skip).unwrap(), "{:?}", s["text"]);
            }
        }
    }
}

#[test]
fn streaming_holds_back_split_multibyte_chars() {
    let tok = hf_tokenizer();
    // Find a golden string with a token that is not valid UTF-8 on its own (emoji, CJK).
    let mut split_seen = 0;
    for s in golden()["strings"].as_array().unwrap() {
        let all = ids(&s["ids"]);
        let mut dec = tok.stream_decoder(false);
        for &id in &all {
            let alone = tok.decode(&[id], false).unwrap();
            let got = dec.step(id).unwrap();
            if alone.contains('\u{FFFD}') {
                split_seen += 1;
                if let Some(g) = got {
                    assert!(!g.contains('\u{FFFD}'));
                }
            }
        }
    }
    assert!(split_seen > 5, "the goldens should split multi-byte characters ({split_seen})");

    // A single 4-byte character that the vocabulary splits over several tokens.
    let (ch, ids) = ["𝔘", "𠀀", "🀄", "😀"]
        .iter()
        .map(|c| (*c, tok.encode(c, false).unwrap()))
        .find(|(_, ids)| ids.len() >= 2)
        .expect("some 4-byte character is split");
    let mut dec = tok.stream_decoder(false);
    assert_eq!(dec.step(ids[0]).unwrap(), None, "{ch}: {ids:?}");
    let mut out = String::new();
    for &id in &ids[1..] {
        out.push_str(&dec.step(id).unwrap().unwrap_or_default());
    }
    assert_eq!(out, ch);
    assert_eq!(dec.flush().unwrap(), None);

    // An incomplete character at the very end comes out as U+FFFD on flush, like decode.
    let mut dec = tok.stream_decoder(false);
    assert_eq!(dec.step(ids[0]).unwrap(), None);
    assert_eq!(dec.flush().unwrap(), Some(tok.decode(&ids[..1], false).unwrap()));
}
