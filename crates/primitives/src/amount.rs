//! Token amounts.

use crate::ParseError;
use bytes::BufMut;
use commonware_codec::Buf;
use commonware_codec::{Error as CodecError, FixedSize, Read, ReadExt, Write};
use std::{fmt, str::FromStr};

/// A token amount in the smallest unit, as an unsigned 128-bit integer.
///
/// All arithmetic is checked: callers decide what an overflow means (usually an invariant
/// violation or an `InsufficientBalance` error). Text and JSON form: a decimal string, because
/// JSON numbers cannot carry 128-bit integers exactly.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug)]
pub struct Amount(pub u128);

impl Amount {
    /// Zero tokens.
    pub const ZERO: Amount = Amount(0);

    /// `self + other`, or `None` on overflow.
    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).map(Amount)
    }

    /// `self - other`, or `None` if `other > self`.
    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0.checked_sub(other.0).map(Amount)
    }

    /// `self + other`, capped at `u128::MAX` (for sums that only bound something, such as a
    /// mempool's pending spend; balances use the checked forms).
    pub fn saturating_add(self, other: Amount) -> Amount {
        Amount(self.0.saturating_add(other.0))
    }

    /// `self - other`, floored at zero (see [`Amount::saturating_add`]).
    pub fn saturating_sub(self, other: Amount) -> Amount {
        Amount(self.0.saturating_sub(other.0))
    }

    /// `percent` % of `self`, rounded down, or `None` if `percent > 100`. Never overflows: it
    /// scales down before it multiplies.
    pub fn percent(self, percent: u8) -> Option<Amount> {
        if percent > 100 {
            return None;
        }
        let percent = u128::from(percent);
        let whole = (self.0 / 100).checked_mul(percent)?;
        let rest = (self.0 % 100).checked_mul(percent)? / 100;
        whole.checked_add(rest).map(Amount)
    }

    /// The part a slash of `percent` takes: [`Amount::percent`], but at least one unit while
    /// anything is left (so that a small holding still pays); `None` above 100 %.
    pub fn slash_share(self, percent: u8) -> Option<Amount> {
        self.percent(percent)
            .map(|share| share.max(self.min(Amount(1))))
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for Amount {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.parse::<u128>()
            .map(Amount)
            .map_err(|_| ParseError::Amount(text.to_string()))
    }
}

impl serde::Serialize for Amount {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Amount {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Text {
            String(String),
            Number(u64),
        }
        match Text::deserialize(deserializer)? {
            Text::String(text) => text.parse().map_err(serde::de::Error::custom),
            Text::Number(number) => Ok(Amount(number as u128)),
        }
    }
}

impl Write for Amount {
    fn write(&self, buf: &mut impl BufMut) {
        self.0.write(buf);
    }
}

impl Read for Amount {
    type Cfg = ();

    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        Ok(Amount(u128::read(buf)?))
    }
}

impl FixedSize for Amount {
    const SIZE: usize = u128::SIZE;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_is_checked() {
        assert_eq!(Amount(1).checked_sub(Amount(2)), None);
        assert_eq!(Amount(u128::MAX).checked_add(Amount(1)), None);
        assert_eq!(Amount(5).checked_sub(Amount(2)), Some(Amount(3)));
    }

    #[test]
    fn a_slash_takes_at_least_one_unit_while_anything_is_left() {
        assert_eq!(Amount(1_000).slash_share(10), Some(Amount(100)));
        assert_eq!(Amount(5).slash_share(10), Some(Amount(1)));
        assert_eq!(Amount::ZERO.slash_share(10), Some(Amount::ZERO));
        assert_eq!(Amount(5).slash_share(0), Some(Amount(1)));
        assert_eq!(Amount(5).slash_share(101), None);
    }

    #[test]
    fn percent_rounds_down_and_never_overflows() {
        assert_eq!(Amount(1_234).percent(10), Some(Amount(123)));
        assert_eq!(Amount(99).percent(50), Some(Amount(49)));
        assert_eq!(Amount(7).percent(100), Some(Amount(7)));
        assert_eq!(Amount(7).percent(0), Some(Amount::ZERO));
        assert_eq!(Amount(u128::MAX).percent(100), Some(Amount(u128::MAX)));
        assert_eq!(
            Amount(u128::MAX).percent(50),
            Some(Amount(u128::MAX / 100 * 50 + u128::MAX % 100 * 50 / 100))
        );
        assert_eq!(Amount(7).percent(101), None);
    }

    #[test]
    fn json_form_is_a_decimal_string() {
        let json = serde_json_like(Amount(340282366920938463463374607431768211455));
        assert_eq!(json, "340282366920938463463374607431768211455");
        assert!("12x".parse::<Amount>().is_err());
    }

    fn serde_json_like(amount: Amount) -> String {
        amount.to_string()
    }
}
