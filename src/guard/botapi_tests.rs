use super::*;

#[test]
fn quotas_have_small_bursts_and_never_exceed_their_window() {
    let second = Duration::from_secs(1);
    let q = quota(
        Pace {
            calls: 30,
            window: second,
        },
        3,
    )
    .unwrap();
    assert_eq!(q.burst_size().get(), 3);
    // 3 at once, then one every 1/28 s: 30 in any second.
    assert_eq!(q.replenish_interval(), second / 28);
    let g = quota(
        Pace {
            calls: 20,
            window: Duration::from_secs(60),
        },
        1,
    )
    .unwrap();
    assert_eq!(g.burst_size().get(), 1);
    assert_eq!(g.replenish_interval(), Duration::from_secs(3));
    let c = quota(
        Pace {
            calls: 1,
            window: second,
        },
        1,
    )
    .unwrap();
    assert_eq!(c.replenish_interval(), second);
    assert!(
        quota(
            Pace {
                calls: 0,
                window: second
            },
            1
        )
        .is_none()
    );
}

#[test]
fn telegram_errors_are_classified_for_the_caller() {
    let id = |t: &str| t.to_string();
    let kind = |e: RequestError| match classify(e, &id) {
        Outcome::RetryAfter(s) => format!("retry {s}"),
        Outcome::Error(BotCallError::Unreachable(_)) => "unreachable".into(),
        Outcome::Error(BotCallError::Refused(_)) => "refused".into(),
        Outcome::Error(BotCallError::Transient(_)) => "transient".into(),
        Outcome::Error(e) => e.to_string(),
    };
    assert_eq!(kind(RequestError::Api(ApiError::BotBlocked)), "unreachable");
    assert_eq!(
        kind(RequestError::Api(ApiError::Unknown(
            "Internal Server Error".into()
        ))),
        "transient"
    );
    assert_eq!(
        kind(RequestError::Api(ApiError::MessageTextIsEmpty)),
        "refused"
    );
    assert_eq!(
        kind(RequestError::Api(ApiError::MessageNotModified)),
        "the message is not modified"
    );
    assert_eq!(
        kind(RequestError::RetryAfter(
            teloxide::types::Seconds::from_seconds(7)
        )),
        "retry 7"
    );
}
