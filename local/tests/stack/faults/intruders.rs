//! Intruders: other people's orders are neither readable nor payable, and a shopper's
//! token opens no admin route.

use crate::helpers::*;
use flashsale::stores::Stores;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intruders_read_and_pay_nothing_of_others_and_shoppers_get_no_admin_route() {
    let stack = stack_with(|o| o.consumers = 0).await;
    let api = Api::new(&stack);
    let sale = api.sale(sale_spec(5, 1, 600, -1, 3600)).await;
    let (status, body) = api.buy(sale, "alice", None).await;
    assert_eq!(status, 202);
    let order = body["order_id"].as_str().unwrap().to_string();
    let bob = api.token("bob");
    let peek = |token: String| {
        let api = &api;
        let order = order.clone();
        async move {
            let (read, _) = api.call("GET", &format!("/api/orders/{order}"), Some(&token), None).await;
            let (pay, _) = api.call("POST", &format!("/api/orders/{order}/payment"), Some(&token), None).await;
            (read, pay)
        }
    };
    assert_eq!(api.order("alice", &order).await.1["status"], "PENDING");
    assert_eq!(peek(bob.clone()).await, (404, 404), "a PENDING order of someone else does not exist");

    let mut redis = redis(&stack).await;
    let persist = persist_orders::PersistOrders::new(Stores::from_config(&stack.config).await.unwrap(), 900);
    persist.handle(sqs_event(&outbox(&mut redis, sale).await)).await;
    assert_eq!(api.order("alice", &order).await.1["status"], "UNPAID");
    assert_eq!(peek(bob.clone()).await, (404, 404), "nor an UNPAID one");
    assert_eq!(peek(api.token("Alice")).await, (404, 404), "user ids compare exactly");
    let (status, body) = api.pay("alice", &order, CARD_OK).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("succeeded")), "{body}");
    api.await_status("alice", &order, "PAID").await;

    let admin_routes = [
        ("GET", "/api/admin/sales".to_string()),
        ("POST", "/api/admin/sales".to_string()),
        ("GET", format!("/api/admin/sales/{sale}")),
        ("POST", format!("/api/admin/sales/{sale}/publish")),
        ("POST", format!("/api/admin/sales/{sale}/resync")),
        ("GET", format!("/api/admin/sales/{sale}/report")),
        ("GET", "/api/admin/anything".to_string()),
    ];
    for (method, path) in admin_routes {
        let (status, body) = api.call(method, &path, Some(&bob), Some(sale_spec(1, 1, 60, 0, 10))).await;
        assert_eq!((status, body["type"].as_str()), (403, Some("/problems/forbidden")), "{method} {path}");
    }
}
