//! The closed choices of the admin API and its CLI, as enums. Each is parsed once at the edge — from a
//! query parameter or JSON field ([`parse`](ExemptionScope::parse), with the 400 text the API gives) or
//! from a CLI flag (clap) — and turned back into its wire name (`as_str`) only for a request, a
//! database column or an audit record. A leaf: it imports nothing of the gateway.

/// The one of `names` (wire name → value) that `input` is.
fn pick<T: Copy>(input: &str, names: &[(&str, T)]) -> Option<T> {
    names.iter().find(|(n, _)| *n == input).map(|(_, v)| *v)
}

/// What an exemption names (`kind` of `POST /v1/admin/exemptions`, `exemptions add --kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExemptionScope {
    Address,
    Domain,
}

impl ExemptionScope {
    pub fn parse(input: &str) -> Result<ExemptionScope, String> {
        use ExemptionScope::*;
        pick(input, &[("address", Address), ("domain", Domain)])
            .ok_or_else(|| format!("kind must be \"address\" or \"domain\", not {input:?}"))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ExemptionScope::Address => "address",
            ExemptionScope::Domain => "domain",
        }
    }

    /// The exempted value, validated and normalised for this kind.
    pub fn value(self, input: &str) -> Result<String, String> {
        match self {
            ExemptionScope::Address => super::validate::address(input),
            ExemptionScope::Domain => super::validate::domain(input),
        }
    }
}

/// What a CSV import does with bad rows (`all_or_nothing` of `POST /v1/admin/recipients/import`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportMode {
    /// The good rows are imported, the bad ones reported (`all_or_nothing` absent or `false`).
    GoodRows,
    /// Nothing is imported when any row is bad (`all_or_nothing=true`).
    AllOrNothing,
}

impl ImportMode {
    /// From the `all_or_nothing` query parameter (a boolean, as the OpenAPI document says).
    pub fn from_query(all_or_nothing: Option<&str>) -> Result<ImportMode, String> {
        use ImportMode::*;
        match all_or_nothing {
            None => Ok(GoodRows),
            Some(v) => pick(v, &[("true", AllOrNothing), ("false", GoodRows)])
                .ok_or_else(|| format!("all_or_nothing must be true or false, not {v:?}")),
        }
    }

    /// The query string that asks for this mode (`""` for the default).
    pub fn query(self) -> &'static str {
        match self {
            ImportMode::GoodRows => "",
            ImportMode::AllOrNothing => "?all_or_nothing=true",
        }
    }
}

/// `format` of `GET /v1/admin/audit`: a page of records, or an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditFormat {
    Json,
    Jsonl,
    Csv,
}

impl AuditFormat {
    pub fn parse(input: Option<&str>) -> Result<AuditFormat, String> {
        use AuditFormat::*;
        let Some(v) = input else { return Ok(Json) };
        pick(v, &[("json", Json), ("jsonl", Jsonl), ("csv", Csv)])
            .ok_or_else(|| format!("format must be json, jsonl or csv, not {v:?}"))
    }
}

/// `audit export --format`: the export formats of [`AuditFormat`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Jsonl,
    Csv,
}

/// `format` of `GET /v1/admin/audit/report/{message_id}` and `audit report --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Json,
    Text,
    Html,
}

impl ReportFormat {
    pub fn parse(input: Option<&str>) -> Result<ReportFormat, String> {
        use ReportFormat::*;
        let Some(v) = input else { return Ok(Json) };
        pick(v, &[("json", Json), ("text", Text), ("html", Html)])
            .ok_or_else(|| format!("format must be json, text or html, not {v:?}"))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ReportFormat::Json => "json",
            ReportFormat::Text => "text",
            ReportFormat::Html => "html",
        }
    }
}

/// `held resolve --outcome`: what the operator found in Stalwart about an uncertain release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ResolveOutcome {
    /// Delivered (or queued): the hold is settled as released.
    Delivered,
    /// Not delivered: the message is sent again.
    NotDelivered,
}

impl ResolveOutcome {
    /// The `delivered` field of `POST /v1/admin/held/{id}/resolve`.
    pub fn delivered(self) -> bool {
        self == ResolveOutcome::Delivered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip_and_others_are_refused() {
        for k in [ExemptionScope::Address, ExemptionScope::Domain] {
            assert_eq!(ExemptionScope::parse(k.as_str()), Ok(k));
        }
        assert_eq!(
            ExemptionScope::parse("Domain").unwrap_err(),
            "kind must be \"address\" or \"domain\", not \"Domain\""
        );
        for f in [ReportFormat::Json, ReportFormat::Text, ReportFormat::Html] {
            assert_eq!(ReportFormat::parse(Some(f.as_str())), Ok(f));
        }
        assert_eq!(ReportFormat::parse(None), Ok(ReportFormat::Json));
        assert!(ReportFormat::parse(Some("pdf")).is_err());
        assert_eq!(AuditFormat::parse(None), Ok(AuditFormat::Json));
        assert_eq!(AuditFormat::parse(Some("csv")), Ok(AuditFormat::Csv));
        assert!(AuditFormat::parse(Some("xml")).is_err());
    }

    #[test]
    fn all_or_nothing_is_a_boolean() {
        assert_eq!(ImportMode::from_query(None), Ok(ImportMode::GoodRows));
        assert_eq!(
            ImportMode::from_query(Some("false")),
            Ok(ImportMode::GoodRows)
        );
        assert_eq!(
            ImportMode::from_query(Some("true")),
            Ok(ImportMode::AllOrNothing)
        );
        assert_eq!(
            ImportMode::from_query(Some("yes")).unwrap_err(),
            "all_or_nothing must be true or false, not \"yes\""
        );
        assert_eq!(ImportMode::AllOrNothing.query(), "?all_or_nothing=true");
    }

    #[test]
    fn resolve_outcome_cli_names() {
        use clap::ValueEnum;
        let names: Vec<String> = ResolveOutcome::value_variants()
            .iter()
            .map(|v| v.to_possible_value().unwrap().get_name().to_string())
            .collect();
        assert_eq!(names, ["delivered", "not-delivered"]);
        assert!(ResolveOutcome::Delivered.delivered());
        assert!(!ResolveOutcome::NotDelivered.delivered());
    }
}
