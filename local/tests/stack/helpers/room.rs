//! The waiting room, as a page goes through it.

use serde_json::{json, Value};

use super::*;

/// A sale behind a waiting room.
pub fn room_spec(mode: &str, stock: u32, limit: u32, rate: u32, starts_in: i64) -> Value {
    let mut spec = sale_spec(stock, limit, 600, starts_in, 3600);
    spec["waiting_room"] = json!({ "mode": mode, "rate": rate, "difficulty": 1000 });
    spec
}

/// Joins as a page does: fetches a challenge, solves it, sends the proof.
pub async fn join(api: &Api, sale: u64, user: &str) -> (u16, Value) {
    let token = api.token(user);
    let (status, challenge) = api.call("GET", &format!("/api/sales/{sale}/queue/challenge"), Some(&token), None).await;
    assert_eq!(status, 200, "{challenge}");
    let challenge: flashsale::waiting_room::Challenge = serde_json::from_value(challenge).unwrap();
    let proof = flashsale::waiting_room::solve(&challenge).expect("a challenge is solvable");
    api.call("POST", &format!("/api/sales/{sale}/queue"), Some(&token), Some(json!({ "proof": proof }))).await
}

pub async fn pass(api: &Api, sale: u64, user: &str) -> (u16, Value) {
    api.call("POST", &format!("/api/sales/{sale}/pass"), Some(&api.token(user)), None).await
}

pub async fn buy_with(api: &Api, sale: u64, user: &str, pass: &str) -> (u16, Value) {
    let body = json!({ "quantity": 1, "pass": pass });
    api.call("POST", &format!("/api/sales/{sale}/purchase"), Some(&api.token(user)), Some(body)).await
}
