//! Poison messages end in the DLQ and can be moved back.

use std::time::Duration;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_end_in_the_dlq_and_can_be_moved_back() {
    let stack = stack_with(|o| {
        o.max_receives = 2;
        o.visibility_timeout_secs = 1;
    })
    .await;
    let sqs = aws_sdk_sqs::Client::new(&flashsale::stores::aws::sdk_config(&stack.config).await);
    sqs.send_message()
        .queue_url(&stack.resources.orders_queue_url)
        .message_body("this is not an order")
        .send()
        .await
        .unwrap();
    let dlq = &stack.resources.orders_dlq_url;
    eventually("the poison message in the DLQ", Duration::from_secs(30), || async {
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(dlq)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .unwrap();
        let n = attrs
            .attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages))
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0);
        (n == 1).then_some(())
    })
    .await;
    let moved = flashsale_local::ops::redrive::redrive(&sqs, dlq, &stack.resources.orders_queue_url).await.unwrap();
    assert_eq!(moved, 1);
}
