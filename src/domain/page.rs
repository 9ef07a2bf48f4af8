//! Cursor paging over ordered collections.

use std::collections::BTreeMap;
use std::ops::Bound;

/// One page of a listing and the cursor to the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// Up to `limit` values after the key `after`, in key order; `next` is set when more follow.
pub fn page_of<K, V, T>(
    map: &BTreeMap<K, V>,
    after: Option<&str>,
    limit: usize,
    mut keep: impl FnMut(&V) -> bool,
    render: impl Fn(&V) -> T,
) -> Page<T>
where
    K: Ord + std::borrow::Borrow<str> + ToString,
{
    let start = after.map_or(Bound::Unbounded, Bound::Excluded);
    let mut items = Vec::new();
    let mut next = None;
    for (k, v) in map.range::<str, _>((start, Bound::Unbounded)) {
        if !keep(v) {
            continue;
        }
        if items.len() == limit {
            next = Some(k.to_string());
            break;
        }
        items.push((k, render(v)));
    }
    // The cursor is the last key handed out, so the next page starts right after it.
    let next = next.and(items.last().map(|(k, _)| k.to_string()));
    Page {
        items: items.into_iter().map(|(_, t)| t).collect(),
        next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_forward_without_gaps_or_repeats() {
        let map: BTreeMap<String, u32> = (0..7).map(|i| (format!("k{i}"), i)).collect();
        let p1 = page_of(&map, None, 3, |_| true, |v| *v);
        assert_eq!(p1.items, vec![0, 1, 2]);
        let p2 = page_of(&map, p1.next.as_deref(), 3, |_| true, |v| *v);
        assert_eq!(p2.items, vec![3, 4, 5]);
        let p3 = page_of(&map, p2.next.as_deref(), 3, |_| true, |v| *v);
        assert_eq!((p3.items, p3.next), (vec![6], None));
    }
}
