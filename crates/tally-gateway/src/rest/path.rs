//! Path templates of the REST routes, matched as ARM matches paths: literal segments
//! case-insensitively, `{name}` as one segment (percent-decoded, kept as the client spelled it)
//! that the handler reads by name.

/// A request path split into percent-decoded segments (outer slashes ignored).
pub(crate) fn segments(path: &str) -> Vec<String> {
    path.trim_matches('/')
        .split('/')
        .map(|segment| {
            percent_encoding::percent_decode_str(segment)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect()
}

/// The `{name}` segments of a matched path.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct PathParams {
    values: Vec<(&'static str, String)>,
}

impl PathParams {
    /// Every parameter, in the template's order.
    pub(crate) fn into_values(self) -> Vec<(&'static str, String)> {
        self.values
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Matches `segments` against `template` (`/subscriptions/{subscriptionId}/providers/...`).
pub(crate) fn match_template(template: &'static str, segments: &[String]) -> Option<PathParams> {
    let parts: Vec<&'static str> = template.trim_matches('/').split('/').collect();
    if parts.len() != segments.len() {
        return None;
    }
    let mut params = PathParams::default();
    for (part, segment) in parts.into_iter().zip(segments) {
        match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            Some(name) => params.values.push((name, segment.clone())),
            None if part.eq_ignore_ascii_case(segment) => {}
            None => return None,
        }
    }
    Some(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str =
        "/subscriptions/{subscriptionId}/providers/Microsoft.Commerce/UsageAggregates";

    #[test]
    fn literals_match_in_any_case_and_parameters_keep_the_clients_spelling() {
        let params = match_template(
            TEMPLATE,
            &segments("/SUBSCRIPTIONS/Ab%20C/providers/microsoft.commerce/usageaggregates/"),
        )
        .unwrap();
        assert_eq!(params.get("subscriptionId"), Some("Ab C"));
        assert_eq!(params.get("other"), None);
        // An empty segment is still a segment: the handler says what is missing.
        let params = match_template(
            TEMPLATE,
            &segments("/subscriptions//providers/Microsoft.Commerce/UsageAggregates"),
        )
        .unwrap();
        assert_eq!(params.get("subscriptionId"), Some(""));
    }

    #[test]
    fn other_paths_do_not_match() {
        for path in [
            "/subscriptions/x/providers/Microsoft.Commerce",
            "/subscriptions/x/providers/Microsoft.Commerce/UsageAggregates/more",
            "/subscriptions/x/providers/Microsoft.Commerce.Admin/UsageAggregates",
            "/",
        ] {
            assert_eq!(match_template(TEMPLATE, &segments(path)), None, "{path}");
        }
    }
}
