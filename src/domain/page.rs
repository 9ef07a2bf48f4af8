//! Cursor paging over ordered collections.

use std::ops::Bound;

/// One page of a listing and the cursor to the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// The keys after the cursor `after`: a range for any ordered map keyed by ids.
pub fn after(after: Option<&str>) -> (Bound<&str>, Bound<&str>) {
    (
        after.map_or(Bound::Unbounded, Bound::Excluded),
        Bound::Unbounded,
    )
}

/// Up to `limit` values of `entries` (a map's range from [`after`]) that `keep`
/// accepts, in key order; `next` is set when more follow.
pub fn page_of<'a, K, V, T>(
    entries: impl Iterator<Item = (&'a K, &'a V)>,
    limit: usize,
    mut keep: impl FnMut(&V) -> bool,
    render: impl Fn(&V) -> T,
) -> Page<T>
where
    K: ToString + 'a,
    V: 'a,
{
    let mut items = Vec::new();
    let mut next = None;
    for (k, v) in entries {
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
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn pages_forward_without_gaps_or_repeats() {
        let map: BTreeMap<String, u32> = (0..7).map(|i| (format!("k{i}"), i)).collect();
        let page =
            |cursor: Option<&str>| page_of(map.range::<str, _>(after(cursor)), 3, |_| true, |v| *v);
        let p1 = page(None);
        assert_eq!(p1.items, vec![0, 1, 2]);
        let p2 = page(p1.next.as_deref());
        assert_eq!(p2.items, vec![3, 4, 5]);
        let p3 = page(p2.next.as_deref());
        assert_eq!((p3.items, p3.next), (vec![6], None));
    }
}
