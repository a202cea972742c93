//! Garbage, truncated and oversized frames, unknown auth-key ids and malformed JSON: the fake
//! drops that connection (or answers 400) and keeps serving everyone else. It never answers
//! transport error -404.

mod common;

use std::time::Duration;

use fake_telegram::mtproto::wire;
use fake_telegram::{FakeTelegram, Options};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `bytes` (then optionally half-closes) and returns what the server sent before closing.
async fn send_and_collect(fake: &FakeTelegram, bytes: &[u8], half_close: bool) -> Vec<u8> {
    let mut s = TcpStream::connect(fake.info.mtproto).await.unwrap();
    s.write_all(bytes).await.unwrap();
    if half_close {
        s.shutdown().await.unwrap();
    }
    let mut got = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got)).await;
    assert!(
        r.is_ok(),
        "the server must close a connection that sent {} bad bytes",
        bytes.len()
    );
    got
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut seq = 0;
    wire::pack_frame(&mut seq, payload)
}

#[tokio::test]
async fn bad_frames_close_only_their_connection() {
    let fake = FakeTelegram::start(Options::default()).await.unwrap();

    let garbage: Vec<u8> = (0..64u8)
        .map(|i| i.wrapping_mul(37).wrapping_add(200))
        .collect();
    let oversized = (200 * 1024 * 1024i32).to_le_bytes().to_vec();
    let negative = (-404i32).to_le_bytes().to_vec();
    let mut bad_crc = frame(&[7u8; 80]);
    let n = bad_crc.len();
    bad_crc[n - 1] ^= 0xff;
    let mut unknown_key = vec![0x11u8; 8];
    unknown_key.extend_from_slice(&[0u8; 72]);
    let mut key_exchange = vec![0u8; 8]; // auth_key_id 0: an unencrypted req_pq_multi
    key_exchange.extend_from_slice(&[1u8; 8]);
    key_exchange.extend_from_slice(&20i32.to_le_bytes());
    key_exchange.extend_from_slice(&0xbe7e8ef1u32.to_le_bytes());
    key_exchange.extend_from_slice(&[9u8; 16]);
    let mut wrong_msg_key = fake.auth_key.id.to_vec();
    wrong_msg_key.extend_from_slice(&[3u8; 16 + 64]);

    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        ("garbage", garbage, false),
        ("oversized length", oversized, false),
        ("negative length", negative, false),
        ("truncated frame", frame(&[5u8; 200])[..50].to_vec(), true),
        ("bad crc32", bad_crc, false),
        ("unknown auth key id", frame(&unknown_key), false),
        ("key exchange attempt", frame(&key_exchange), false),
        ("right key id, forged msg_key", frame(&wrong_msg_key), false),
    ];
    for (name, bytes, half_close) in cases {
        let got = send_and_collect(&fake, &bytes, half_close).await;
        assert!(
            got.is_empty(),
            "{name}: the fake answered {got:?} instead of closing"
        );
    }
    assert!(fake.world.stats().bad_frames >= 7);

    // Everyone else is still served: a real client signs in and resolves a channel.
    let c = common::connect(&fake).client;
    common::login(&fake, &c).await;
    assert!(
        c.resolve_username(&fake.info.channels[0])
            .await
            .unwrap()
            .is_some()
    );
    let body = control_get(fake.info.control, "/stats").await;
    assert!(body.contains("bad_frames"), "{body}");
}

/// Minimal HTTP/1.1 client for the control and Bot API ports.
async fn http(addr: std::net::SocketAddr, request: String) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

async fn control_get(addr: std::net::SocketAddr, path: &str) -> String {
    http(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    )
    .await
    .1
}

#[tokio::test]
async fn malformed_json_to_the_bot_api_is_a_400_and_service_goes_on() {
    let fake = FakeTelegram::start(Options::default()).await.unwrap();
    let token = &fake.info.bot_token;
    let body = "{\"chat_id\": 1, \"text\": ";
    let (code, answer) = http(
        fake.info.bot_api,
        format!(
            "POST /bot{token}/sendMessage HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .await;
    assert_eq!(code, 400, "{answer}");
    let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(v["ok"], false);
    assert!(v["description"].as_str().unwrap().contains("JSON"), "{v}");

    let (code, answer) = http(
        fake.info.bot_api,
        format!("GET /bot{token}/getMe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(code, 200, "{answer}");
    let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(v["result"]["is_bot"], true);

    let (code, _) = http(
        fake.info.control,
        "POST /posts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5\r\nConnection: close\r\n\r\n{oops".to_string(),
    )
    .await;
    assert_eq!(code, 400, "the control API refuses malformed JSON too");
}
