//! Environment overrides: `NTA7516__<SECTION>__<KEY>=value` sets `[section] key = value` in the parsed
//! TOML before it is read into [`super::Config`].

use super::ConfigError;

pub(super) fn apply_env(
    root: &mut toml::Value,
    env: impl Iterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    for (var, raw) in env {
        let Some(path) = var.strip_prefix("NTA7516__") else {
            continue;
        };
        let keys: Vec<String> = path.split("__").map(|k| k.to_ascii_lowercase()).collect();
        if keys.iter().any(String::is_empty) {
            return Err(ConfigError::Env {
                var,
                message: "empty key segment".into(),
            });
        }
        let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or(toml::Value::String(raw));
        let mut node = &mut *root;
        for key in &keys[..keys.len() - 1] {
            let table = node.as_table_mut().ok_or_else(|| ConfigError::Env {
                var: var.clone(),
                message: format!("{key} is not a table"),
            })?;
            node = table
                .entry(key.clone())
                .or_insert_with(|| toml::Value::Table(Default::default()));
        }
        let table = node.as_table_mut().ok_or_else(|| ConfigError::Env {
            var: var.clone(),
            message: "parent is not a table".into(),
        })?;
        table.insert(keys[keys.len() - 1].clone(), value);
    }
    Ok(())
}
