//! Least privilege: each function signs in to MySQL and to Redis as a user of its own,
//! with the rights of what it runs and nothing more. The one list both sides read: the
//! migrate function grants these rights to each function's MySQL user, the template's
//! ElastiCache users carry these access strings (a test compares them), and the local
//! tests run the purchase path as these users on a Redis with these ACLs.

/// One function's users and rights.
#[derive(Debug, Clone, Copy)]
pub struct FunctionAccess {
    /// The function's crate and binary name.
    pub function: &'static str,
    /// Its MySQL user (the proxy lets its role sign in as this one alone).
    pub mysql_user: &'static str,
    /// `<privileges> ON <table>` of the schema, each granted as it stands.
    pub mysql_grants: &'static [&'static str],
    /// Its Redis (ElastiCache RBAC) user and access string; `None`: no Redis at all.
    pub redis: Option<(&'static str, &'static str)>,
}

/// A Redis access string: `keys` (patterns), then `-@all`, the commands named and the
/// connection's own (`AUTH`, `HELLO`, `PING`, `SELECT`). A function that runs scripts
/// names `EVALSHA` and `SCRIPT LOAD` (the crate answers `NOSCRIPT` with `SCRIPT LOAD`,
/// never `EVAL`). Redis checks each command a script runs against the caller's user, so a
/// function's commands are those of every script it may run and of its direct calls
/// (the tests below derive them from `lua/` and list the direct calls). Nothing else: no
/// `FLUSHALL`, `KEYS`, `CONFIG`, `SCRIPT FLUSH`, `DEBUG`, `CLIENT KILL`, `SHUTDOWN`.
macro_rules! acl {
    ($keys:literal, $commands:literal) => {
        concat!("on ", $keys, " -@all ", $commands, " +auth +hello +ping +select")
    };
}

/// Every function's access, in the template's order.
pub const FUNCTIONS: [FunctionAccess; 8] = [
    FunctionAccess {
        function: "admit",
        mysql_user: "flashsale_admit",
        // Sales Redis does not know, and a lost sale's rebuild under its row lock
        // (`FOR UPDATE` needs UPDATE on MySQL 8), reading its orders.
        mysql_grants: &["SELECT, UPDATE ON sales", "SELECT ON orders"],
        redis: Some((
            "admit",
            acl!(
                "~{sale:* ~flashsale:*",
                "+get +set +del +exists +incrby +decrby +pexpire +hget +hset +hsetnx +hmget +hgetall +hvals +hlen \
                 +hexists +hincrby +hdel +sadd +sismember +zadd +zrem +zremrangebyscore +time +info +wait +evalsha +script|load"
            ),
        )),
    },
    FunctionAccess {
        function: "shop-api",
        mysql_user: "flashsale_shop",
        // Sales and a shopper's orders; the payment started on an order (and counted in
        // the sale's tallies); rebuilds.
        mysql_grants: &["SELECT, UPDATE ON sales", "SELECT, UPDATE ON orders", "SELECT, UPDATE ON order_tallies"],
        redis: Some((
            "shop-api",
            acl!(
                "~{sale:* ~flashsale:*",
                "+get +set +del +pexpire +hget +hset +hsetnx +hmget +hgetall +hvals +hlen +hincrby +hdel +sadd \
                 +sismember +zadd +zrem +zrank +zscore +zcard +zrangebyscore +zremrangebyscore +time +info +evalsha +script|load"
            ),
        )),
    },
    FunctionAccess {
        function: "admin-api",
        mysql_user: "flashsale_admin_api",
        mysql_grants: &[
            "SELECT, INSERT, UPDATE ON sales",
            "SELECT ON orders",
            "SELECT, INSERT, UPDATE ON order_tallies",
            "SELECT ON payment_events",
            // The audit trail: written and read, never deleted from.
            "SELECT, INSERT, UPDATE ON admin_actions",
        ],
        redis: Some((
            "admin-api",
            acl!(
                "~{sale:* ~flashsale:*",
                "+get +set +del +pexpire +hget +hset +hsetnx +hmget +hgetall +hvals +hlen +hdel +sadd +sismember \
                 +zadd +zrem +zrank +zscore +zcard +zrangebyscore +zremrangebyscore +time +info +evalsha +script|load"
            ),
        )),
    },
    FunctionAccess {
        function: "persist-orders",
        mysql_user: "flashsale_persist",
        mysql_grants: &[
            "SELECT, UPDATE ON sales",
            "SELECT, INSERT ON orders",
            "SELECT, INSERT, UPDATE ON order_tallies",
        ],
        redis: Some((
            "persist-orders",
            acl!(
                "~{sale:*",
                "+set +exists +incrby +pexpire +pttl +hget +hset +hkeys +hexists +hincrby +hdel +sadd +srem \
                 +sismember +zrem +info +evalsha +script|load"
            ),
        )),
    },
    FunctionAccess {
        function: "close-expired",
        mysql_user: "flashsale_close",
        mysql_grants: &[
            "SELECT, UPDATE ON sales",
            "SELECT, UPDATE ON orders",
            "SELECT, INSERT, UPDATE ON order_tallies",
            "SELECT, INSERT ON payment_events",
        ],
        redis: Some((
            "close-expired",
            acl!(
                "~{sale:* ~flashsale:provider_budget:*",
                "+set +exists +incrby +pexpire +hget +hmget +hset +hexists +hincrby +hdel +sadd +sismember +zrem +time \
                 +info +evalsha +script|load"
            ),
        )),
    },
    FunctionAccess {
        function: "reconcile",
        mysql_user: "flashsale_reconcile",
        mysql_grants: &[
            "SELECT, UPDATE ON sales",
            "SELECT, UPDATE ON orders",
            "SELECT, INSERT, UPDATE ON order_tallies",
            "SELECT, INSERT ON payment_events",
        ],
        redis: Some((
            "reconcile",
            acl!(
                "~{sale:* ~flashsale:*",
                "+get +set +del +exists +incrby +pexpire +pexpireat +hget +hset +hsetnx +hmget +hgetall +hkeys \
                 +hvals +hlen +hexists +hincrby +hdel +sadd +sismember +smismember +zadd +zrem +zrangebyscore \
                 +zremrangebyscore +time +info +evalsha +script|load"
            ),
        )),
    },
    FunctionAccess {
        function: "payment-webhook",
        mysql_user: "flashsale_payments",
        mysql_grants: &[
            "SELECT ON sales",
            "SELECT, UPDATE ON orders",
            "SELECT, INSERT, UPDATE ON order_tallies",
            "SELECT, INSERT ON payment_events",
        ],
        // The account's budget of provider calls, and nothing of any sale.
        redis: Some((
            "payment-webhook",
            acl!("~flashsale:provider_budget:*", "+hmget +hset +pexpire +time +evalsha +script|load"),
        )),
    },
    FunctionAccess {
        function: "render-pages",
        mysql_user: "flashsale_pages",
        mysql_grants: &["SELECT ON sales"],
        // A sale's remaining stock, for its page.
        redis: Some(("render-pages", acl!("~{sale:*", "+get"))),
    },
];

/// The access of `function` (its crate name).
pub fn of(function: &str) -> Option<&'static FunctionAccess> {
    FUNCTIONS.iter().find(|f| f.function == function)
}

/// The access of the function whose MySQL user is `user`.
pub fn of_mysql_user(user: &str) -> Option<&'static FunctionAccess> {
    FUNCTIONS.iter().find(|f| f.mysql_user == user)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Each Lua script and whether `lua/epoch.lua` (`INFO`) is put in front of it, as
    /// `stores/redis.rs` builds them.
    const SCRIPTS: [(&str, &str, bool); 14] = [
        ("admit", include_str!("../../../../lua/admit.lua"), true),
        ("release", include_str!("../../../../lua/release.lua"), true),
        ("warm", include_str!("../../../../lua/warm.lua"), true),
        ("rebuild", include_str!("../../../../lua/rebuild.lua"), true),
        ("present", include_str!("../../../../lua/present.lua"), true),
        ("lost", include_str!("../../../../lua/lost.lua"), true),
        ("holders", include_str!("../../../../lua/holders.lua"), false),
        ("claim", include_str!("../../../../lua/claim.lua"), false),
        ("persisting", include_str!("../../../../lua/persisting.lua"), false),
        ("clear", include_str!("../../../../lua/clear.lua"), false),
        ("join", include_str!("../../../../lua/join.lua"), false),
        ("queue_control", include_str!("../../../../lua/queue_control.lua"), false),
        ("provider_budget", include_str!("../../../../lua/provider_budget.lua"), false),
        ("currency", include_str!("../../../../lua/currency.lua"), false),
    ];

    /// What a lost sale's recovery runs (`recovery::detect::recover`), from any function
    /// that meets one: the scripts, the rebuild claim's `SET NX PX`, and the live-sale
    /// index's `ZADD` and `ZREMRANGEBYSCORE` (`catalog::live::track_live`).
    const RECOVER: (&[&str], &[&str]) =
        (&["present", "lost", "claim", "rebuild"], &["set", "zadd", "zremrangebyscore"]);

    /// What each function runs in Redis, read off its code on every path: the scripts,
    /// and the commands it sends itself (pipelines included); whether it may recover a
    /// lost sale.
    fn runs(function: &str) -> (Vec<&'static str>, Vec<&'static str>, bool) {
        let (scripts, direct, recovers): (&[&str], &[&str], bool) = match function {
            // The limit's pipeline (HGET), the outbox check after a timeout (HEXISTS),
            // WAIT for the replica; holders, and the undo.
            "admit" => (&["admit", "holders", "release"], &["hget", "hexists", "wait"], true),
            // The shoppers' sale read (HGETALL, GET, TIME), the waiting room's status
            // (+ZRANK, ZCARD, HLEN) and join, an order found in the outbox through the
            // live-sale index (ZRANGEBYSCORE, HGET, ZSCORE); a payment's kept answer (GET,
            // SET PXAT) under its claim (SET NX, claim), the provider's budget; the
            // currency of a sale warmed without it kept (currency).
            "shop-api" => (
                &["join", "claim", "provider_budget", "currency"],
                &["hgetall", "get", "set", "time", "hget", "zrank", "zcard", "hlen", "zrangebyscore", "zscore"],
                true,
            ),
            // Publishing (warm, then the index), the room's view and control, drift and
            // the report (GET, HLEN, HGET), an order found as shop-api finds it (currency).
            "admin-api" => (
                &["warm", "queue_control", "currency"],
                &["get", "hlen", "hget", "hgetall", "zrank", "zcard", "time", "zrangebyscore", "zscore"],
                true,
            ),
            // Marking a batch persisting, a refusal's correction (HKEYS, then release's
            // reject), clearing what landed.
            "persist-orders" => (&["persisting", "release", "clear"], &["hkeys"], false),
            // Closes, each cancel within the provider's budget.
            "close-expired" => (&["release", "provider_budget"], &[], false),
            // Its run claim, the pending-orders table kept (SMISMEMBER, HKEYS), the outbox's overdue entries
            // (ZRANGEBYSCORE, HMGET, ZADD XX), closes, keys' expiry (HLEN, PEXPIREAT),
            // reports and pages (GET, HGET, HLEN).
            "reconcile" => (
                &["claim", "release", "provider_budget"],
                &["set", "zrangebyscore", "hmget", "zadd", "smismember", "hkeys", "hlen", "pexpireat", "get", "hget"],
                true,
            ),
            // A sale's remaining stock.
            "render-pages" => (&[], &["get"], false),
            // The provider's budget, before it reads an intent.
            "payment-webhook" => (&["provider_budget"], &[], false),
            other => panic!("{other}: say what it runs in Redis"),
        };
        (scripts.to_vec(), direct.to_vec(), recovers)
    }

    /// The commands a script runs, as `redis.call('NAME'` / `redis.pcall("NAME"` name them.
    fn commands_of(script: &str) -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        for call in ["redis.call(", "redis.pcall("] {
            for (at, _) in script.match_indices(call) {
                let rest = script[at + call.len()..].trim_start();
                let quote = rest.chars().next().filter(|q| *q == '\'' || *q == '"');
                if let Some(name) = quote.and_then(|q| rest[1..].split(q).next()) {
                    found.insert(name.to_lowercase());
                }
            }
        }
        found
    }

    /// Each function's Redis user may run exactly the commands its scripts and calls
    /// need: a script that starts using a command, or a function that starts running
    /// another script, fails here until the access string says so (and then the
    /// template, which another test holds to this list).
    #[test]
    fn each_redis_user_may_run_exactly_what_its_function_runs() {
        let script = |name: &str| SCRIPTS.iter().find(|s| s.0 == name).unwrap_or_else(|| panic!("no script {name}"));
        assert!(commands_of(include_str!("../../../../lua/epoch.lua")).contains("info"));
        assert_eq!(
            commands_of("redis.call('HGET', k) redis.pcall(\"ZAdd\", k)"),
            ["hget", "zadd"].map(String::from).into()
        );
        for f in FUNCTIONS {
            let Some((user, acl)) = f.redis else { continue };
            let (mut scripts, mut direct, recovers) = runs(f.function);
            if recovers {
                scripts.extend(RECOVER.0);
                direct.extend(RECOVER.1);
            }
            let mut needed: BTreeSet<String> = direct.iter().map(|c| c.to_string()).collect();
            for name in &scripts {
                let (_, text, epoch) = script(name);
                needed.extend(commands_of(text));
                if *epoch {
                    needed.insert("info".into());
                }
            }
            if !scripts.is_empty() {
                needed.extend(["evalsha".to_string(), "script|load".to_string()]);
            }
            needed.extend(["auth", "hello", "ping", "select"].map(String::from));
            let allowed: BTreeSet<String> =
                acl.split_whitespace().filter_map(|rule| rule.strip_prefix('+')).map(str::to_string).collect();
            assert_eq!(
                allowed.symmetric_difference(&needed).collect::<Vec<_>>(),
                Vec::<&String>::new(),
                "{user}: the access string allows {allowed:?}, the function runs {needed:?}"
            );
        }
    }

    #[test]
    fn users_are_distinct_and_rights_name_tables_of_the_schema() {
        let tables = ["sales", "orders", "order_tallies", "payment_events", "admin_actions"];
        let mut users = std::collections::HashSet::new();
        for f in FUNCTIONS {
            assert!(users.insert(f.mysql_user), "{} shares a MySQL user", f.function);
            for grant in f.mysql_grants {
                let (privileges, table) = grant.split_once(" ON ").expect("<privileges> ON <table>");
                assert!(tables.contains(&table), "{grant}");
                assert!(
                    privileges.split(", ").all(|p| ["SELECT", "INSERT", "UPDATE"].contains(&p)),
                    "{grant}: no DELETE, no DDL"
                );
            }
            if let Some((user, acl)) = f.redis {
                assert!(users.insert(user), "{} shares a Redis user", f.function);
                assert!(acl.contains("-@all") && !acl.contains("+@"), "{}: commands by name only", f.function);
            }
        }
    }
}
