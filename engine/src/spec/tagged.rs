//! Deserialisation of internally tagged enums (`kind: load`) that keeps the path to an
//! error inside the variant.
//!
//! serde's derived internally tagged enums buffer their content and lose track of where
//! inside the variant an error occurred, so a misspelt key deep in a stage could not be
//! located. Here the variant body is deserialised through `serde_path_to_error` and the
//! inner path travels in the error message, prefixed by [`PATH_MARK`]; the parser splits
//! it off again and joins it to the outer path.

use serde_json::Value;

/// Separates an inner path from the message in errors raised by tagged enums.
pub(crate) const PATH_MARK: char = '\u{1}';

/// Splits the tag off a tagged object and checks it names a known variant.
pub(crate) fn split_tag<E: serde::de::Error>(
    value: Value,
    tag: &'static str,
    variants: &'static [&'static str],
) -> Result<(String, Value), E> {
    let Value::Object(mut map) = value else {
        return Err(E::invalid_type(
            unexpected(&value),
            &"a map with a `kind` key",
        ));
    };
    let kind = match map.remove(tag) {
        Some(Value::String(kind)) => kind,
        Some(other) => {
            return Err(with_path(
                tag,
                E::invalid_type(unexpected(&other), &"a string"),
            ));
        }
        None => return Err(E::missing_field(tag)),
    };
    if !variants.contains(&kind.as_str()) {
        return Err(with_path(tag, E::unknown_variant(&kind, variants)));
    }
    Ok((kind, Value::Object(map)))
}

/// Deserialises a variant body, carrying the inner error path in the message.
pub(crate) fn body<T: serde::de::DeserializeOwned, E: serde::de::Error>(
    value: Value,
) -> Result<T, E> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|err| {
        let inner = err.inner().to_string();
        let path = err.path().to_string();
        let (nested_path, message) = split_marked(&inner);
        let full = join_paths(&path, nested_path);
        E::custom(format!("{PATH_MARK}{full}{PATH_MARK}{message}"))
    })
}

fn with_path<E: serde::de::Error>(path: &str, err: E) -> E {
    E::custom(format!("{PATH_MARK}{path}{PATH_MARK}{err}"))
}

/// Splits `\u{1}path\u{1}message` into its parts; a plain message has an empty path.
pub(crate) fn split_marked(message: &str) -> (&str, &str) {
    if let Some(rest) = message.strip_prefix(PATH_MARK)
        && let Some((path, msg)) = rest.split_once(PATH_MARK)
    {
        return (path, msg);
    }
    ("", message)
}

/// Joins two serde_path_to_error paths (`.` means the root).
pub(crate) fn join_paths(outer: &str, inner: &str) -> String {
    let outer = if outer == "." { "" } else { outer };
    let inner = if inner == "." { "" } else { inner };
    match (outer.is_empty(), inner.is_empty()) {
        (true, _) => inner.to_string(),
        (false, true) => outer.to_string(),
        (false, false) if inner.starts_with('[') => format!("{outer}{inner}"),
        (false, false) => format!("{outer}.{inner}"),
    }
}

fn unexpected(value: &Value) -> serde::de::Unexpected<'_> {
    use serde::de::Unexpected;
    match value {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Number(n) => n
            .as_f64()
            .map_or(Unexpected::Other("number"), Unexpected::Float),
        Value::String(s) => Unexpected::Str(s),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}

/// Serialises a registry member as its family writes it: `{tag: name, ...settings}`.
pub(crate) fn serialize_member<S: serde::Serializer>(
    s: S,
    tag: &str,
    name: &str,
    settings: &Value,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let fields = settings.as_object();
    let mut map = s.serialize_map(Some(1 + fields.map_or(0, |f| f.len())))?;
    map.serialize_entry(tag, name)?;
    for (k, v) in fields.into_iter().flatten() {
        map.serialize_entry(k, v)?;
    }
    map.end()
}

/// Deserialises a registry member: splits off `tag`, and parses the settings with
/// `parse`, given the name (one of `names`) and the settings (errors located).
pub(crate) fn deserialize_member<'de, D, T>(
    d: D,
    tag: &'static str,
    names: &'static [&'static str],
    parse: impl Fn(&str, Value) -> Option<Result<T, String>>,
) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::Deserialize;
    let value = Value::deserialize(d)?;
    let (kind, settings) = split_tag::<D::Error>(value, tag, names)?;
    // split_tag only returns names from `names`, which is the registry's list.
    parse(&kind, settings)
        .ok_or_else(|| serde::de::Error::unknown_variant(&kind, names))?
        .map_err(serde::de::Error::custom)
}

/// A registry family's schema: `oneOf` its members, each from [`variant_schema`].
pub(crate) fn family_schema(description: &str, variants: Vec<Value>) -> schemars::Schema {
    schemars::json_schema!({
        "description": description,
        "oneOf": variants,
    })
}

/// The schema of one member of an internally tagged family whose settings have `schema`:
/// an object with the selecting key `tag` fixed to `name` among its properties.
pub(crate) fn variant_schema(tag: &str, name: &str, description: &str, schema: Value) -> Value {
    let mut variant = schema;
    if let Value::Object(o) = &mut variant {
        o.remove("$schema");
        o.remove("title");
        o.insert("type".into(), Value::String("object".into()));
        o.insert("description".into(), Value::String(description.into()));
        let properties = o
            .entry("properties")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Value::Object(p) = properties {
            p.insert(
                tag.into(),
                serde_json::json!({"type": "string", "const": name}),
            );
        }
        let required = o
            .entry("required")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(r) = required {
            r.insert(0, Value::String(tag.into()));
        }
    }
    variant
}

/// The serde and schema impls of a registry family's member type (`LrSchedule`,
/// `OptimizerSpec`): written `{tag: name, ...settings}`, parsed through the row its name
/// selects, compared and shown by name and settings, its schema `oneOf` every row. The
/// type provides `name()`, `settings()`, `entries()` (rows with `name`, `description`,
/// `schema`, `parse`) and `names()`. A row's `parse` takes the settings, or with `named`
/// the row's name and the settings (one parser serving several rows).
macro_rules! registry_member {
    ($ty:ident, $tag:literal, $description:literal) => {
        $crate::spec::tagged::registry_member!(@impl $ty, $tag, $description, |e, v| (e.parse)(v));
    };
    ($ty:ident, $tag:literal, $description:literal, named) => {
        $crate::spec::tagged::registry_member!(@impl $ty, $tag, $description, |e, v| (e.parse)(e.name, v));
    };
    (@impl $ty:ident, $tag:literal, $description:literal, |$e:ident, $v:ident| $parse:expr) => {
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}{}", self.name(), self.settings())
            }
        }

        impl PartialEq for $ty {
            fn eq(&self, other: &Self) -> bool {
                self.name() == other.name() && self.settings() == other.settings()
            }
        }

        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                $crate::spec::tagged::serialize_member(s, $tag, self.name(), &self.settings())
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $crate::spec::tagged::deserialize_member(d, $tag, $ty::names(), |name, $v| {
                    $ty::entries().find(|e| e.name == name).map(|$e| $parse)
                })
            }
        }

        impl schemars::JsonSchema for $ty {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($ty).into()
            }

            fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
                let variants = $ty::entries()
                    .map(|e| {
                        $crate::spec::tagged::variant_schema(
                            $tag,
                            e.name,
                            e.description,
                            (e.schema)(generator).to_value(),
                        )
                    })
                    .collect();
                $crate::spec::tagged::family_schema($description, variants)
            }
        }
    };
}
pub(crate) use registry_member;

/// The impls of a registry family whose members are written as bare names (`fn: huber`,
/// `metrics: [f1]`): the type is a `Copy` handle on a row with `name` and `description`
/// and provides `all()`, `named()` and `names()`. Compared and shown by name, written as
/// it, its schema `oneOf` the rows' names.
macro_rules! named_row {
    ($ty:ident, $description:literal) => {
        impl PartialEq for $ty {
            fn eq(&self, other: &Self) -> bool {
                self.0.name == other.0.name
            }
        }

        impl Eq for $ty {}

        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0.name)
            }
        }

        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.0.name)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let name = <String as serde::Deserialize>::deserialize(d)?;
                $ty::named(&name)
                    .ok_or_else(|| serde::de::Error::unknown_variant(&name, $ty::names()))
            }
        }

        impl schemars::JsonSchema for $ty {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($ty).into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                let variants: Vec<serde_json::Value> = $ty::all()
                    .map(|m| {
                        serde_json::json!({
                            "type": "string",
                            "const": m.0.name,
                            "description": m.0.description,
                        })
                    })
                    .collect();
                schemars::json_schema!({
                    "description": $description,
                    "oneOf": variants,
                })
            }
        }
    };
}
pub(crate) use named_row;

/// Implements `Deserialize` for an internally tagged enum whose variants wrap structs.
macro_rules! tagged_enum {
    ($ty:ident, $tag:literal, { $($name:literal => $variant:ident $(($inner:ty))?),+ $(,)? }) => {
        impl $ty {
            /// Every name a pipeline can write here, in declaration order (did-you-mean
            /// lists, docs and messages take them from this one table).
            pub const NAMES: &'static [&'static str] = &[$($name),+];

            /// The name as written in pipelines.
            pub fn name(&self) -> &'static str {
                match self {
                    $($ty::$variant { .. } => $name,)+
                }
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                const VARIANTS: &[&str] = $ty::NAMES;
                let value = <serde_json::Value as serde::Deserialize>::deserialize(d)?;
                let (kind, body) = $crate::spec::tagged::split_tag::<D::Error>(value, $tag, VARIANTS)?;
                match kind.as_str() {
                    $($name => $crate::spec::tagged::tagged_variant!(body, $ty, $variant $(, $inner)?),)+
                    // split_tag only returns names from VARIANTS.
                    other => Err(<D::Error as serde::de::Error>::unknown_variant(other, VARIANTS)),
                }
            }
        }
    };
}
pub(crate) use tagged_enum;

/// One arm of [`tagged_enum`]: a variant wrapping a struct, or a unit variant.
macro_rules! tagged_variant {
    ($body:ident, $ty:ident, $variant:ident, $inner:ty) => {
        $crate::spec::tagged::body::<$inner, D::Error>($body).map($ty::$variant)
    };
    ($body:ident, $ty:ident, $variant:ident) => {
        $crate::spec::tagged::body::<$crate::spec::tagged::NoFields, D::Error>($body)
            .map(|_| $ty::$variant)
    };
}
pub(crate) use tagged_variant;

/// The body of a unit variant: no keys besides the tag.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoFields {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_paths() {
        assert_eq!(join_paths(".", "a.b"), "a.b");
        assert_eq!(
            join_paths("stages[2]", "optimizer.lr"),
            "stages[2].optimizer.lr"
        );
        assert_eq!(join_paths("stages", "[2]"), "stages[2]");
        assert_eq!(join_paths("a", "."), "a");
    }

    #[test]
    fn splits_marked_messages() {
        assert_eq!(split_marked("\u{1}a.b\u{1}boom"), ("a.b", "boom"));
        assert_eq!(split_marked("plain"), ("", "plain"));
    }
}
