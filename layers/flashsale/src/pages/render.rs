//! The static pages: an index of open and upcoming sales and one page per sale,
//! rendered with askama from `templates/`, and the content-hashed assets they link
//! ([`super::publish`] stores them). Live numbers (stock left, the server's clock, the
//! order) come from the API in the page's script; the rendered HTML only changes when a
//! sale's definition does, or when it sells out or ends.
//!
//! Rendering is deterministic: the same inputs give the same bytes.

use std::sync::LazyLock;

use askama::Template;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::domain::{format_price, Sale, SaleId};
use crate::error::{Error, Result};

/// A script or style sheet of the pages, stored under a key that names its content.
struct Asset {
    name: &'static str,
    ext: &'static str,
    body: &'static str,
}

/// Every page loads `common` (the sign-in, the API) and its own script: shoppers never
/// download the staff console's.
const ASSETS: [Asset; 6] = [
    Asset { name: "common", ext: "js", body: include_str!("../../../../templates/assets/common.js") },
    Asset { name: "shop", ext: "js", body: include_str!("../../../../templates/assets/shop.js") },
    Asset { name: "sale", ext: "js", body: include_str!("../../../../templates/assets/sale.js") },
    Asset { name: "orders", ext: "js", body: include_str!("../../../../templates/assets/orders.js") },
    Asset { name: "console", ext: "js", body: include_str!("../../../../templates/assets/console.js") },
    Asset { name: "app", ext: "css", body: include_str!("../../../../templates/assets/app.css") },
];
/// HTML is short-lived at the edge; a change is also invalidated explicitly.
pub const HTML_CACHE: &str = "public, max-age=5";
/// Content-hashed assets never change under their key.
pub const ASSET_CACHE: &str = "public, max-age=31536000, immutable";

/// What a page says about a sale besides its definition. Upcoming and open look the
/// same when rendered (the script shows which, by the server's clock).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageState {
    Scheduled,
    SoldOut,
    Ended,
}

impl PageState {
    pub fn of(sale: &Sale, remaining: Option<i64>, now: DateTime<Utc>) -> Self {
        if now >= sale.ends_at {
            PageState::Ended
        } else if remaining == Some(0) {
            PageState::SoldOut
        } else {
            PageState::Scheduled
        }
    }

    fn attr(self) -> &'static str {
        match self {
            PageState::Scheduled => "upcoming",
            PageState::SoldOut => "sold_out",
            PageState::Ended => "ended",
        }
    }

    fn text(self) -> &'static str {
        match self {
            PageState::Scheduled => "Not open yet",
            PageState::SoldOut => "Sold out",
            PageState::Ended => "This sale has ended",
        }
    }
}

fn format_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M").to_string()
}

fn hashed_key(name: &str, ext: &str, body: &str) -> String {
    let digest = Sha256::digest(body.as_bytes());
    let short: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("assets/{name}.{short}.{ext}")
}

/// The keys of the content-hashed assets, as the pages link them.
pub struct Assets {
    pub common_js: String,
    pub shop_js: String,
    pub sale_js: String,
    pub orders_js: String,
    pub console_js: String,
    pub css: String,
}

/// Each of [`ASSETS`]' keys, in its order: hashed once per container, not per page.
static ASSET_KEYS: LazyLock<[String; 6]> =
    LazyLock::new(|| ASSETS.map(|asset| hashed_key(asset.name, asset.ext, asset.body)));

impl Assets {
    pub fn current() -> Self {
        let [common_js, shop_js, sale_js, orders_js, console_js, css] = ASSET_KEYS.clone();
        Assets { common_js, shop_js, sale_js, orders_js, console_js, css }
    }
}

#[derive(Template)]
#[template(path = "sale.html")]
struct SalePage<'a> {
    assets: &'a Assets,
    api: &'a str,
    sign_in_url: &'a str,
    payments_js_url: &'a str,
    payments_key: &'a str,
    id: SaleId,
    name: &'a str,
    description: &'a str,
    price: String,
    stock: u32,
    per_user_limit: u32,
    starts_at: String,
    ends_at: String,
    state: &'static str,
    state_text: &'static str,
}

struct IndexEntry {
    id: SaleId,
    name: String,
    price: String,
    state: &'static str,
    when: String,
}

#[derive(Template)]
#[template(path = "index.html")]
struct IndexPage<'a> {
    assets: &'a Assets,
    api: &'a str,
    sales: Vec<IndexEntry>,
}

/// A page without sale data: the shopper's orders, the staff console. Their script
/// fills them from the API once the visitor has signed in.
#[derive(Template)]
#[template(path = "orders.html")]
struct OrdersPage<'a> {
    assets: &'a Assets,
    api: &'a str,
    sign_in_url: &'a str,
}

#[derive(Template)]
#[template(path = "admin.html")]
struct ConsolePage<'a> {
    assets: &'a Assets,
    api: &'a str,
    sign_in_url: &'a str,
}

/// The keys of the shopper's "My orders" page and of the staff console.
pub const ORDERS_KEY: &str = "orders";
pub const CONSOLE_KEY: &str = "admin/";

/// Where the pages point: the API prefix, the sign-in page, and the payment provider's
/// script and publishable key.
#[derive(Clone, Debug)]
pub struct Site {
    pub api: String,
    pub sign_in_url: String,
    pub payments_js_url: String,
    pub payments_key: String,
}

impl Site {
    pub fn from_config(config: &crate::config::Config) -> Site {
        Site {
            api: config.site.api_base.clone(),
            sign_in_url: config.site.sign_in_url.clone(),
            payments_js_url: config.payments.js_url.clone(),
            payments_key: config.payments.publishable_key.clone(),
        }
    }
}

pub fn sale_key(id: SaleId) -> String {
    format!("sales/{id}")
}

pub fn render_sale(site: &Site, sale: &Sale, state: PageState) -> Result<String> {
    let assets = Assets::current();
    SalePage {
        assets: &assets,
        api: &site.api,
        sign_in_url: &site.sign_in_url,
        payments_js_url: &site.payments_js_url,
        payments_key: &site.payments_key,
        id: sale.id,
        name: &sale.name,
        description: &sale.description,
        price: format_price(sale.price_cents, &sale.currency),
        stock: sale.stock,
        per_user_limit: sale.per_user_limit,
        starts_at: format_time(sale.starts_at),
        ends_at: format_time(sale.ends_at),
        state: state.attr(),
        state_text: state.text(),
    }
    .render()
    .map_err(|e| Error::Internal(format!("rendering sale {}: {e}", sale.id)))
}

/// The index lists sales that have not ended, soonest first. Its script keeps each
/// sale's state live from the API (opening, selling out), as the HTML is cached.
pub fn render_index(site: &Site, sales: &[(Sale, PageState)]) -> Result<String> {
    let assets = Assets::current();
    let mut listed: Vec<&(Sale, PageState)> = sales.iter().filter(|(_, s)| *s != PageState::Ended).collect();
    listed.sort_by_key(|(sale, _)| (sale.starts_at, sale.id));
    let sales = listed
        .into_iter()
        .map(|(sale, state)| IndexEntry {
            id: sale.id,
            name: sale.name.clone(),
            price: format_price(sale.price_cents, &sale.currency),
            state: state.attr(),
            when: match state {
                PageState::SoldOut => "Sold out".to_string(),
                _ => format!("from {} UTC", format_time(sale.starts_at)),
            },
        })
        .collect();
    IndexPage { assets: &assets, api: &site.api, sales }
        .render()
        .map_err(|e| Error::Internal(format!("rendering the index: {e}")))
}

/// One object of the site, as it is stored in the bucket.
pub struct Page {
    pub key: String,
    pub body: Vec<u8>,
    pub content_type: &'static str,
    pub cache_control: &'static str,
}

/// The assets, the index over `all` sales, "My orders", the staff console, and the
/// pages of `sales`.
pub fn render_site(site: &Site, sales: &[(Sale, PageState)], all: &[(Sale, PageState)]) -> Result<Vec<Page>> {
    const HTML: &str = "text/html; charset=utf-8";
    let assets = Assets::current();
    let (api, sign_in_url) = (site.api.as_str(), site.sign_in_url.as_str());
    let orders = OrdersPage { assets: &assets, api, sign_in_url }.render();
    let console = ConsolePage { assets: &assets, api, sign_in_url }.render();
    let mut pages: Vec<Page> = ASSETS
        .iter()
        .zip(ASSET_KEYS.iter())
        .map(|(asset, key)| Page {
            key: key.clone(),
            body: asset.body.into(),
            content_type: if asset.ext == "js" { "text/javascript; charset=utf-8" } else { "text/css; charset=utf-8" },
            cache_control: ASSET_CACHE,
        })
        .collect();
    pages.push(Page {
        key: "index.html".into(),
        body: render_index(site, all)?.into_bytes(),
        content_type: HTML,
        cache_control: HTML_CACHE,
    });
    for (key, body) in [(ORDERS_KEY, orders), (CONSOLE_KEY, console)] {
        let body = body.map_err(|e| Error::Internal(format!("rendering {key}: {e}")))?.into_bytes();
        pages.push(Page { key: key.into(), body, content_type: HTML, cache_control: HTML_CACHE });
    }
    for (sale, state) in sales {
        let body = render_sale(site, sale, *state)?.into_bytes();
        pages.push(Page { key: sale_key(sale.id), body, content_type: HTML, cache_control: HTML_CACHE });
    }
    Ok(pages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Currency;
    use chrono::Duration;

    fn sale() -> Sale {
        let t = DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z").unwrap().with_timezone(&Utc);
        Sale {
            id: SaleId(7),
            name: "Phone <script>alert(1)</script>".into(),
            description: "Fast & \"new\"".into(),
            price_cents: 123_456_789,
            currency: Default::default(),
            stock: 100,
            sold: 0,
            per_user_limit: 2,
            starts_at: t,
            ends_at: t + Duration::hours(2),
            payment_window_secs: 600,
            waiting_room: None,
            published: true,
            created_at: t,
        }
    }

    fn site() -> Site {
        Site {
            api: "/api".into(),
            sign_in_url: "/dev/sign-in".into(),
            payments_js_url: "https://js.stripe.com/v3/".into(),
            payments_key: "pk_test_x".into(),
        }
    }

    #[test]
    fn prices_have_their_currencys_decimals() {
        let kwd = Currency::try_from("kwd".to_string()).unwrap();
        assert_eq!(format_price(12_340, &kwd), "12.340 KWD");
        assert_eq!(format_price(1_234_567_890, &kwd), "1,234,567.890 KWD");
        assert_eq!(format_price(5, &kwd), "0.005 KWD");
        let jpy = Currency::try_from("jpy".to_string()).unwrap();
        assert_eq!(format_price(5_000, &jpy), "5,000 JPY");
        assert_eq!(format_price(0, &jpy), "0 JPY");
        // A code stored before the table is read in hundredths, as it always was.
        assert_eq!(format_price(1_999, &Currency::stored("abc".into())), "19.99 ABC");
        let sale = Sale { currency: kwd.clone(), price_cents: 12_340, ..sale() };
        let html = render_sale(&site(), &sale, PageState::Scheduled).unwrap();
        assert!(html.contains("12.340 KWD") && !html.contains('$'), "{html}");
        let index =
            render_index(&site(), &[(Sale { currency: jpy, price_cents: 5_000, ..sale }, PageState::Scheduled)])
                .unwrap();
        assert!(index.contains("5,000 JPY") && !index.contains("$"), "{index}");
    }

    #[test]
    fn sale_text_is_escaped() {
        let html = render_sale(&site(), &sale(), PageState::Scheduled).unwrap();
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(
            html.contains("Phone &#60;script&#62;alert(1)&#60;/script&#62;") || html.contains("Phone &lt;script&gt;")
        );
        assert!(html.contains("Fast &#38; &#34;new&#34;") || html.contains("Fast &amp; &quot;new&quot;"));
        assert!(html.contains("$1,234,567.89"));
        let assets = Assets::current();
        assert!(html.contains(&format!("/{}", assets.common_js)) && html.contains(&format!("/{}", assets.sale_js)));
        assert!(!html.contains(&assets.console_js), "shoppers do not download the staff console");
    }

    #[test]
    fn sold_out_and_ended_pages_say_so() {
        let sold = render_sale(&site(), &sale(), PageState::SoldOut).unwrap();
        assert!(sold.contains("data-state=\"sold_out\"") && sold.contains("Sold out"));
        let ended = render_sale(&site(), &sale(), PageState::Ended).unwrap();
        assert!(ended.contains("data-state=\"ended\"") && ended.contains("This sale has ended"));
        let s = sale();
        assert_eq!(PageState::of(&s, Some(0), s.starts_at), PageState::SoldOut);
        assert_eq!(PageState::of(&s, Some(0), s.ends_at), PageState::Ended);
        assert_eq!(PageState::of(&s, Some(3), s.starts_at), PageState::Scheduled);
    }

    #[test]
    fn rendering_is_deterministic_and_the_index_skips_ended_sales() {
        let a = render_sale(&site(), &sale(), PageState::Scheduled).unwrap();
        let b = render_sale(&site(), &sale(), PageState::Scheduled).unwrap();
        assert_eq!(a, b);
        let mut other = sale();
        other.id = SaleId(8);
        other.name = "Gone".into();
        let index = render_index(&site(), &[(sale(), PageState::Scheduled), (other, PageState::Ended)]).unwrap();
        assert!(index.contains("/sales/7"));
        assert!(index.contains(r#"data-sale-id="7""#), "the script finds the sale to keep live");
        assert!(!index.contains("/sales/8"));
    }
}
