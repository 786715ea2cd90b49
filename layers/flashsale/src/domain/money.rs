//! Money: the currencies a sale may be priced in, with their ISO 4217 minor units and
//! the payment provider's (Stripe's) bounds on one charge.
//!
//! A sale's `price_cents` is a count of its currency's minor unit, the unit the provider
//! charges in: cents of a dollar or a euro, fils of a dinar (a thousandth), yen (no
//! minor unit at all). It is sent to the provider as it is, so no price loses a digit
//! in a conversion, and an order's amount compares with the intent's as two integers.
//!
//! Before this table a sale could be priced in any three-letter code with a minor unit,
//! its `price_cents` read as hundredths. A stored sale keeps its code and its number:
//! in a two-decimal currency (dollars, euros, pounds, ...) the price means what it
//! meant; in a three-decimal one (BHD, JOD, KWD, OMR, TND) the same number now displays
//! as thousandths, a tenth of what was shown before (1000 was 10.00 KWD, now 1.000).
//! What is charged does not change: the provider was always sent `price_cents` as it
//! is, and reads it in the currency's minor unit; only a price it would refuse (a
//! code outside the table, a three-decimal price not ending in 0, an amount out of its
//! bounds) is no longer sent at all (see [`Currency::chargeable`]).
//!
//! Only currencies in [`CURRENCIES`] are accepted for a new sale: the provider charges in
//! each, its minor unit is the ISO one (Stripe's exceptions, ISK, UGX and MGA, whose
//! amounts the provider reads otherwise, are left out), and the provider's minimum
//! charge in it is known. Stripe publishes minimums for the currencies an account
//! settles in (USD 0.50, GBP 0.30, JPY 50, ...); for the others it asks for the
//! equivalent of 0.50 USD at the day's rate. Those rows hold a round amount worth about
//! 1 USD, so a rate that moves by half still leaves every accepted price chargeable.

use serde::{Deserialize, Serialize};

use super::InvalidSale;

/// The provider's largest charge, in any currency's minor unit: eight digits
/// (99,999,999 cents is $999,999.99).
pub const MAX_CHARGE: u64 = 99_999_999;

/// One accepted currency: its code, the digits of its minor unit, and the provider's
/// smallest charge in that unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CurrencyUnit {
    pub code: &'static str,
    pub digits: u8,
    pub min_charge: u64,
}

const fn unit(code: &'static str, digits: u8, min_charge: u64) -> CurrencyUnit {
    CurrencyUnit { code, digits, min_charge }
}

/// The accepted currencies, sorted by code (a test holds it so).
pub const CURRENCIES: &[CurrencyUnit] = &[
    unit("aed", 2, 200),
    unit("aud", 2, 50),
    unit("bgn", 2, 100),
    // Three-decimal currencies: the provider takes only amounts whose last digit is 0.
    unit("bhd", 3, 500),
    unit("bif", 0, 3_000),
    unit("brl", 2, 50),
    unit("cad", 2, 50),
    unit("chf", 2, 50),
    unit("clp", 0, 1_000),
    unit("cny", 2, 800),
    unit("czk", 2, 1_500),
    unit("djf", 0, 200),
    unit("dkk", 2, 250),
    unit("egp", 2, 6_000),
    unit("eur", 2, 50),
    unit("gbp", 2, 30),
    unit("gnf", 0, 10_000),
    unit("hkd", 2, 400),
    unit("huf", 2, 17_500),
    unit("ils", 2, 400),
    unit("inr", 2, 50),
    unit("jod", 3, 1_000),
    unit("jpy", 0, 50),
    unit("kes", 2, 15_000),
    unit("kmf", 0, 500),
    unit("krw", 0, 1_500),
    unit("kwd", 3, 500),
    unit("mxn", 2, 1_000),
    unit("myr", 2, 200),
    unit("nok", 2, 300),
    unit("nzd", 2, 50),
    unit("omr", 3, 500),
    unit("php", 2, 6_000),
    unit("pln", 2, 200),
    unit("pyg", 0, 10_000),
    unit("qar", 2, 400),
    unit("ron", 2, 200),
    unit("rwf", 0, 1_500),
    unit("sar", 2, 400),
    unit("sek", 2, 300),
    unit("sgd", 2, 50),
    unit("thb", 2, 1_000),
    unit("tnd", 3, 3_000),
    unit("try", 2, 5_000),
    unit("twd", 2, 4_000),
    unit("usd", 2, 50),
    unit("vnd", 0, 25_000),
    unit("vuv", 0, 150),
    unit("xaf", 0, 1_000),
    unit("xof", 0, 1_000),
    unit("xpf", 0, 200),
    unit("zar", 2, 2_000),
];

/// An ISO 4217 currency code, lower case (`usd`, `kwd`), as the payment provider spells
/// it. Parsed at the boundary (any case): only a code of [`CURRENCIES`] becomes one.
/// A sale stored before the table holds its code as it was ([`Currency::stored`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency(String);

impl Currency {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A code as MySQL holds it: accepted when the sale was created, so read as it is
    /// even if the table no longer has it (its sale stays readable; its checkout is
    /// refused, not sent).
    pub fn stored(code: String) -> Currency {
        Currency(code.to_ascii_lowercase())
    }

    /// The currency's row of [`CURRENCIES`]; `None` for a stored code outside it.
    pub fn unit(&self) -> Option<&'static CurrencyUnit> {
        CURRENCIES.binary_search_by(|u| u.code.cmp(self.0.as_str())).ok().map(|i| &CURRENCIES[i])
    }

    /// Digits of the minor unit: 2 for cents, 3 for fils, 0 for yen (2 for a stored
    /// code outside the table, as every price was read before it).
    pub fn digits(&self) -> u8 {
        self.unit().map_or(2, |u| u.digits)
    }

    /// `amount` in minor units, if the provider can charge it: within its minimum and
    /// maximum, and (three-decimal currencies) a whole hundredth.
    pub fn chargeable(&self, amount: u64) -> Result<u64, InvalidSale> {
        let unit = self.unit().ok_or(InvalidSale("currency is not one the payment provider charges in"))?;
        if amount < unit.min_charge {
            Err(InvalidSale("price_cents is below the payment provider's smallest charge in the currency"))
        } else if amount > MAX_CHARGE {
            Err(InvalidSale("price_cents is above the payment provider's largest charge (99999999 minor units)"))
        } else if unit.digits == 3 && !amount.is_multiple_of(10) {
            Err(InvalidSale("price_cents of a three-decimal currency must end in 0 (the provider charges hundredths)"))
        } else {
            Ok(amount)
        }
    }
}

impl Default for Currency {
    fn default() -> Self {
        Currency("usd".into())
    }
}

impl TryFrom<String> for Currency {
    type Error = InvalidSale;
    fn try_from(code: String) -> Result<Self, InvalidSale> {
        let currency = Currency(code.to_ascii_lowercase());
        if currency.unit().is_some() {
            Ok(currency)
        } else {
            Err(InvalidSale(
                "currency must be an ISO 4217 code the payment provider charges in (usd, eur, kwd, jpy...)",
            ))
        }
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.0
    }
}

impl std::fmt::Display for Currency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A price in `currency`'s minor unit, with the currency's own decimals: `$1,234.50`
/// for US dollars, `1,234.500 KWD` and `5,000 JPY` for the others.
pub fn format_price(minor: u64, currency: &Currency) -> String {
    let scale = 10u64.pow(u32::from(currency.digits()));
    let whole = (minor / scale).to_string();
    let mut grouped = String::new();
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    if scale > 1 {
        let digits = usize::from(currency.digits());
        grouped = format!("{grouped}.{:0digits$}", minor % scale);
    }
    match currency.as_str() {
        "usd" => format!("${grouped}"),
        other => format!("{grouped} {}", other.to_ascii_uppercase()),
    }
}

/// The money of a sale as its orders record it: what the provider captured (paid
/// orders, disputed ones, and those whose money was refunded: late, or at the provider),
/// what went back, and what is disputed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SaleMoney {
    /// Taken by the provider: `PAID`, `DISPUTED` and `REFUNDED` orders.
    pub captured_cents: u64,
    /// Given back: `REFUNDED` orders.
    pub refunded_cents: u64,
    /// Contested by the card holders' banks: `DISPUTED` orders (captured, and may go back).
    pub disputed_cents: u64,
    /// Unpaid orders with a payment started, not yet decided.
    pub awaiting_cents: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn currency(code: &str) -> Currency {
        Currency::try_from(code.to_string()).unwrap()
    }

    #[test]
    fn the_table_is_sorted_lower_case_and_every_minimum_is_chargeable() {
        assert!(CURRENCIES.windows(2).all(|w| w[0].code < w[1].code), "sorted, no code twice");
        for unit in CURRENCIES {
            assert!(unit.code.len() == 3 && unit.code.bytes().all(|b| b.is_ascii_lowercase()), "{unit:?}");
            assert!(unit.digits <= 3, "{unit:?}");
            let currency = currency(unit.code);
            assert_eq!(currency.chargeable(unit.min_charge), Ok(unit.min_charge), "{unit:?}");
            assert!(currency.chargeable(unit.min_charge - 1).is_err(), "{unit:?}");
        }
    }

    #[test]
    fn minor_units_are_iso_4217s() {
        for (code, digits) in [("usd", 2), ("eur", 2), ("kwd", 3), ("bhd", 3), ("jod", 3), ("omr", 3), ("tnd", 3)] {
            assert_eq!(currency(code).digits(), digits, "{code}");
        }
        for code in ["jpy", "krw", "clp", "vnd", "xof"] {
            assert_eq!(currency(code).digits(), 0, "{code}");
        }
    }

    #[test]
    fn only_codes_of_the_table_parse_in_any_case() {
        assert_eq!(currency("KWD").as_str(), "kwd");
        assert_eq!(currency("Jpy").as_str(), "jpy");
        assert_eq!(Currency::default().as_str(), "usd");
        // Three letters, but no currency (abc), not ISO (eu, euro), or one the provider
        // reads in units other than ISO's (isk, ugx, mga), or does not charge in (xau).
        for bad in ["", "eu", "euro", "e1r", "abc", "zzz", "isk", "ugx", "mga", "xau", "us\u{0}"] {
            assert!(Currency::try_from(bad.to_string()).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_charge_is_within_the_providers_bounds() {
        let (usd, kwd, jpy) = (currency("usd"), currency("kwd"), currency("jpy"));
        assert!(usd.chargeable(0).is_err());
        assert!(usd.chargeable(49).is_err());
        assert_eq!(usd.chargeable(50), Ok(50));
        assert_eq!(usd.chargeable(MAX_CHARGE), Ok(MAX_CHARGE));
        assert!(usd.chargeable(MAX_CHARGE + 1).is_err());
        assert!(usd.chargeable(u64::MAX).is_err());
        assert_eq!(jpy.chargeable(50), Ok(50));
        assert_eq!(kwd.chargeable(12_340), Ok(12_340));
        assert!(kwd.chargeable(12_345).is_err(), "fils the provider cannot take");
        let legacy = Currency::stored("ABC".into());
        assert_eq!((legacy.as_str(), legacy.digits()), ("abc", 2));
        assert!(legacy.chargeable(1_000).is_err());
    }

    #[test]
    fn prices_are_grouped_dollars_and_cents() {
        let usd = Currency::default();
        assert_eq!(format_price(0, &usd), "$0.00");
        assert_eq!(format_price(5, &usd), "$0.05");
        assert_eq!(format_price(19_900, &usd), "$199.00");
        assert_eq!(format_price(123_456_789, &usd), "$1,234,567.89");
        let eur = Currency::try_from("EUR".to_string()).unwrap();
        assert_eq!(format_price(123_450, &eur), "1,234.50 EUR");
    }
}
