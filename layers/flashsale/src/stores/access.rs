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

/// The commands of the Lua scripts and of the direct calls a function that changes a
/// sale's live state runs (the scripts are shared, so their commands are too); script
/// calls by hash, loading a script the server lacks, and the connection's own
/// commands. `info` is read inside the scripts (`lua/epoch.lua`). Nothing else: no
/// `FLUSHALL`, `KEYS`, `CONFIG`, `SCRIPT FLUSH`, `DEBUG`, `CLIENT KILL`, `SHUTDOWN`.
macro_rules! writer_acl {
    () => {
        "on ~{sale:* ~flashsale:* -@all \
         +get +set +del +exists +incrby +decrby +pexpire +pexpireat +pttl \
         +hget +hset +hsetnx +hmget +hgetall +hkeys +hvals +hlen +hexists +hincrby +hdel \
         +sadd +srem +sismember +smismember \
         +zadd +zrem +zrank +zscore +zcard +zrangebyscore +zremrangebyscore \
         +time +info +wait +evalsha +script|load \
         +auth +hello +ping +select"
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
        redis: Some(("admit", writer_acl!())),
    },
    FunctionAccess {
        function: "shop-api",
        mysql_user: "flashsale_shop",
        // Sales and a shopper's orders; the payment started on an order (and counted in
        // the sale's tallies); rebuilds.
        mysql_grants: &["SELECT, UPDATE ON sales", "SELECT, UPDATE ON orders", "SELECT, UPDATE ON order_tallies"],
        redis: Some(("shop-api", writer_acl!())),
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
        redis: Some(("admin-api", writer_acl!())),
    },
    FunctionAccess {
        function: "persist-orders",
        mysql_user: "flashsale_persist",
        mysql_grants: &[
            "SELECT, UPDATE ON sales",
            "SELECT, INSERT ON orders",
            "SELECT, INSERT, UPDATE ON order_tallies",
        ],
        redis: Some(("persist-orders", writer_acl!())),
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
        redis: Some(("close-expired", writer_acl!())),
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
        redis: Some(("reconcile", writer_acl!())),
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
        redis: None,
    },
    FunctionAccess {
        function: "render-pages",
        mysql_user: "flashsale_pages",
        mysql_grants: &["SELECT ON sales"],
        // A sale's remaining stock, for its page.
        redis: Some(("render-pages", "on ~{sale:* -@all +get +auth +hello +ping +select")),
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
