//! Card numbers in text: found by their shape and the Luhn check, and masked to their last
//! four digits. Shared by the server's masking rules (`switchboard_core::masking`) and the
//! SDK's client-side masking, so both find exactly the same numbers; no regex engine, so the
//! SDK stays small.

use std::borrow::Cow;
use std::ops::Range;

/// Digits of the shortest and the longest card number found.
pub const CARD_DIGITS: std::ops::RangeInclusive<usize> = 13..=19;
/// Digits a masked card keeps visible, at its end.
pub const CARD_VISIBLE_DIGITS: usize = 4;
/// The character that replaces a hidden one.
pub const MASK_CHAR: char = '*';

/// `text` with every card number's digits but the last four replaced by [`MASK_CHAR`]
/// (separators kept): borrowed when it holds none.
pub fn mask_cards(text: &str) -> Cow<'_, str> {
    let hidden: Vec<Range<usize>> = find_cards(text).into_iter().flat_map(hidden_digits).collect();
    if hidden.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    for range in hidden {
        out.push_str(&text[from..range.start]);
        out.extend(std::iter::repeat_n(MASK_CHAR, range.len()));
        from = range.end;
    }
    out.push_str(&text[from..]);
    Cow::Owned(out)
}

/// A run of digit groups: the byte range of each group.
pub type Groups = Vec<Range<usize>>;

/// The card numbers in `text`: each as the byte ranges of its digit groups.
///
/// A run is a maximal sequence of ASCII digit groups joined by exactly one space or dash. In
/// each run, consecutive groups whose digits number 13 to 19 and pass the Luhn check are a
/// card, the longest first from the left; a group is never split, so a long reference number
/// written without separators is never read as a card inside it.
pub fn find_cards(text: &str) -> Vec<Groups> {
    let mut cards = Vec::new();
    for run in digit_runs(text) {
        let digits = |groups: &[Range<usize>]| groups.iter().map(|g| g.len()).sum::<usize>();
        let mut i = 0;
        while i < run.len() {
            // A card has at most 19 digits, so at most 19 groups: the search is linear in
            // the text, however many short groups it holds.
            let last = run.len().min(i + CARD_DIGITS.end());
            let found = (i + 1..=last).rev().find(|&j| {
                let window = &run[i..j];
                CARD_DIGITS.contains(&digits(window)) && luhn(window.iter().flat_map(|g| text[g.clone()].bytes()))
            });
            match found {
                Some(j) => {
                    cards.push(run[i..j].to_vec());
                    i = j;
                }
                None => i += 1,
            }
        }
    }
    cards
}

fn digit_runs(text: &str) -> Vec<Groups> {
    let bytes = text.as_bytes();
    let mut runs = Vec::new();
    let mut run: Groups = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at].is_ascii_digit() {
            let start = at;
            while at < bytes.len() && bytes[at].is_ascii_digit() {
                at += 1;
            }
            run.push(start..at);
            // One separator followed by a digit continues the run.
            let continues = at + 1 < bytes.len() && matches!(bytes[at], b' ' | b'-') && bytes[at + 1].is_ascii_digit();
            if continues {
                at += 1;
            } else {
                runs.push(std::mem::take(&mut run));
            }
        } else {
            at += 1;
        }
    }
    runs
}

/// The Luhn check over ASCII digits (the check digit last).
pub fn luhn(digits: impl DoubleEndedIterator<Item = u8>) -> bool {
    let sum: u32 = digits
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(d - b'0');
            if i % 2 == 1 {
                let twice = d * 2;
                if twice > 9 { twice - 9 } else { twice }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// The digits of a card that are hidden: all but the last [`CARD_VISIBLE_DIGITS`].
pub fn hidden_digits(groups: Groups) -> Vec<Range<usize>> {
    let total: usize = groups.iter().map(|g| g.len()).sum();
    let hidden = total - CARD_VISIBLE_DIGITS;
    let mut out = Vec::new();
    let mut left = hidden;
    for group in groups {
        if left == 0 {
            break;
        }
        let take = left.min(group.len());
        out.push(group.start..group.start + take);
        left -= take;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cards_are_masked_to_their_last_four_digits() {
        assert_eq!(mask_cards("pay 4111 1111 1111 1111 now"), "pay **** **** **** 1111 now");
        assert_eq!(mask_cards("5500-0055-5555-5559"), "****-****-****-5559");
        assert!(matches!(mask_cards("order 4111 1111 1111 1112"), Cow::Borrowed(_)));
        assert!(matches!(mask_cards("no digits at all"), Cow::Borrowed(_)));
    }
}
