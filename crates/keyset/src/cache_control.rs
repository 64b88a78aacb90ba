//! `Cache-Control` of a key-set response: the provider's word on how long the set stays fresh.

/// `max-age=N` of one Cache-Control value, in seconds; `no-store` and `no-cache` count as 0 (the
/// shortest TTL the configuration allows, rather than refetching on every token).
pub fn max_age(value: &str) -> Option<u64> {
    let mut found = None;
    for directive in value.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(0);
        }
        if let Some(n) = lower.strip_prefix("max-age=") {
            found = n.trim_matches('"').parse::<u64>().ok();
        }
    }
    found
}

/// The `max-age` of a response's Cache-Control header values: the first that names one.
pub fn max_age_of<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<u64> {
    values.into_iter().find_map(max_age)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_max_age() {
        assert_eq!(max_age("public, max-age=3600"), Some(3600));
        assert_eq!(max_age("Max-Age=\"60\", must-revalidate"), Some(60));
        assert_eq!(max_age("no-cache, max-age=600"), Some(0));
        assert_eq!(max_age("private"), None);
        assert_eq!(max_age("max-age=-1"), None);
        assert_eq!(max_age_of(["private", "max-age=5"]), Some(5));
    }
}
