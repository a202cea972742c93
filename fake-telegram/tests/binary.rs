//! The standalone `fake-telegram serve`: one JSON line with everything a client needs, and a
//! control API that scripts the world.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let code = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (
        code,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

#[test]
fn serve_prints_its_addresses_and_obeys_the_control_api() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fake-telegram"))
        .args([
            "serve",
            "--channels",
            "2",
            "--posts",
            "30",
            "--seed",
            "3",
            "--no-2fa",
        ])
        .args([
            "--fault",
            r#"{"kind":"too_many","retry_after":4,"method":"getMe"}"#,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let info: serde_json::Value = serde_json::from_str(&line).unwrap();
    for key in [
        "mtproto",
        "bot_api",
        "control",
        "auth_key",
        "dc_id",
        "phone",
        "code",
        "bot_token",
        "channels",
    ] {
        assert!(!info[key].is_null(), "{key} missing from {line}");
    }
    assert_eq!(info["password"], "", "--no-2fa");
    assert_eq!(info["auth_key"].as_str().unwrap().len(), 512);
    let control = info["control"].as_str().unwrap();
    let channel = info["channels"][0].as_str().unwrap();

    let (code, v) = http(
        control,
        "POST",
        "/posts",
        &format!(r#"{{"channel":"{channel}","text":"hello"}}"#),
    );
    assert_eq!(code, 200, "{v}");
    let id = v["id"].as_i64().unwrap();
    let (code, _) = http(
        control,
        "POST",
        "/edits",
        &format!(r#"{{"channel":"@{channel}","id":{id},"text":"hello!"}}"#),
    );
    assert_eq!(code, 200);
    let (code, _) = http(
        control,
        "POST",
        "/deletes",
        &format!(r#"{{"channel":"{channel}","ids":[{id}]}}"#),
    );
    assert_eq!(code, 200);
    let (code, v) = http(
        control,
        "POST",
        "/deletes",
        &format!(r#"{{"channel":"{channel}","ids":[{id}]}}"#),
    );
    assert_eq!(code, 400, "deleting twice is refused: {v}");
    let (code, v) = http(
        control,
        "POST",
        "/posts",
        r#"{"channel":"nope","text":"x"}"#,
    );
    assert_eq!(code, 400, "{v}");

    let token = info["bot_token"].as_str().unwrap();
    let bot_api = info["bot_api"].as_str().unwrap();
    let (code, v) = http(bot_api, "GET", &format!("/bot{token}/getMe"), "");
    assert_eq!(code, 429, "the --fault flag fired: {v}");
    assert_eq!(v["parameters"]["retry_after"], 4);
    let (code, _) = http(bot_api, "GET", &format!("/bot{token}/getMe"), "");
    assert_eq!(code, 200);
    let (code, v) = http(
        control,
        "POST",
        "/bot/updates",
        r#"{"user_id":5,"text":"/start"}"#,
    );
    assert_eq!(code, 200);
    assert_eq!(v["message"]["entities"][0]["type"], "bot_command");
    let (code, v) = http(
        bot_api,
        "POST",
        &format!("/bot{token}/sendMessage"),
        r#"{"chat_id":5,"text":"hi"}"#,
    );
    assert_eq!(code, 200, "{v}");
    let (_, sent) = http(control, "GET", "/bot/sent", "");
    assert!(
        sent.as_array()
            .unwrap()
            .iter()
            .any(|c| c["method"] == "sendmessage" && c["params"]["text"] == "hi")
    );
    let (_, stats) = http(control, "GET", "/stats", "");
    assert!(stats["bot_api"]["requests"]["getme"].as_u64().unwrap() >= 2);
    child.kill().unwrap();
    let _ = child.wait();
    let _ = std::io::stdout().flush();
}
