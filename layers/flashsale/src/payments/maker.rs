//! Who made a PaymentIntent: the account serves others too (the shop's other income, a
//! second stack), so every intent this stack creates names it in its metadata.

/// The metadata key naming the stack that created an intent.
pub const STACK_TAG: &str = "flashsale_stack";

/// Who made an intent, as its [`STACK_TAG`] says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Maker {
    /// This stack: the tag names it.
    This,
    /// Nobody says: no tag at all. Intents made before intents were tagged (by the
    /// previous release, which also runs beside this one during a canary deploy) are
    /// ours and carry only `order_id` and `sale_id`; so may anyone else's on the account.
    /// One is ours only when the order it names holds its id (`orders.payment_intent`):
    /// only this stack attaches an intent to an order, and only one it made.
    Untagged,
    /// Another stack (or anyone else who tags intents with [`STACK_TAG`]).
    Another,
}

impl Maker {
    /// By an intent's tag (`None`: its metadata has no [`STACK_TAG`] key), to `stack`.
    pub fn by_tag(tag: Option<&str>, stack: &str) -> Maker {
        match tag {
            None => Maker::Untagged,
            Some(tag) if tag == stack => Maker::This,
            Some(_) => Maker::Another,
        }
    }
}
