//! The OpenAPI schemas of the OAuth endpoints' forms, generated from core's
//! tables of their parameters ([`TOKEN_FORM`], [`TOKEN_HINT_FORM`]): the
//! parser and the document read the same list, so they cannot disagree.

use latchkey_core::oauth_form::{
    FormParameter, ParameterValue, ACCESS_TOKEN_TYPE, CLIENT_ASSERTION_TYPE, ID_TOKEN_TYPE,
    JWT_TOKEN_TYPE, TOKEN_FORM, TOKEN_HINT_FORM,
};
use latchkey_types::schema::{GrantType, NonBlank, ScopeList};
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, RefBuilder, SchemaType, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

/// The form of `POST /oauth/token` (RFC 6749 §4.4, RFC 7523, RFC 8707).
pub struct TokenForm;

impl PartialSchema for TokenForm {
    fn schema() -> RefOr<Schema> {
        form(
            "The form of `POST /oauth/token` (RFC 6749 §4.4, RFC 7523, RFC 8707).",
            &TOKEN_FORM,
        )
    }
}
impl ToSchema for TokenForm {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        referenced(&TOKEN_FORM, schemas);
    }
}

/// The form of introspection and revocation. (Not `TokenForm`: that name is
/// the token endpoint's, and two schemas of one name are one in the
/// document.)
pub struct TokenHintForm;

impl PartialSchema for TokenHintForm {
    fn schema() -> RefOr<Schema> {
        form(
            "The form of introspection (RFC 7662) and revocation (RFC 7009).",
            &TOKEN_HINT_FORM,
        )
    }
}
impl ToSchema for TokenHintForm {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        referenced(&TOKEN_HINT_FORM, schemas);
    }
}

/// An object schema with one property per parameter.
fn form(description: &str, parameters: &[FormParameter]) -> RefOr<Schema> {
    let mut object = ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(description));
    for parameter in parameters {
        object = object.property(parameter.name, property(parameter));
        if parameter.required {
            object = object.required(parameter.name);
        }
    }
    object.into()
}

/// The named schema a parameter's value refers to, if any.
fn named(value: ParameterValue) -> Option<(String, RefOr<Schema>)> {
    let pair = |name: std::borrow::Cow<'static, str>, schema| Some((name.into_owned(), schema));
    match value {
        ParameterValue::GrantType => pair(GrantType::name(), GrantType::schema()),
        ParameterValue::Scope => pair(ScopeList::name(), ScopeList::schema()),
        ParameterValue::NonBlank => pair(NonBlank::name(), NonBlank::schema()),
        ParameterValue::Text | ParameterValue::ClientAssertionType | ParameterValue::TokenType => {
            None
        }
    }
}

fn referenced(parameters: &[FormParameter], schemas: &mut Vec<(String, RefOr<Schema>)>) {
    for parameter in parameters {
        if let Some(pair) = named(parameter.value) {
            if !schemas.iter().any(|(name, _)| *name == pair.0) {
                schemas.push(pair);
            }
        }
    }
}

fn property(parameter: &FormParameter) -> RefOr<Schema> {
    if let Some((name, _)) = named(parameter.value) {
        let reference = RefBuilder::new()
            .ref_location_from_schema_name(name)
            .description(Some(parameter.description));
        if parameter.required {
            return reference.into();
        }
        return OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::Null))
            .item(reference)
            .into();
    }
    let mut text = ObjectBuilder::new().description(Some(parameter.description));
    text = if parameter.required {
        text.schema_type(Type::String)
    } else {
        text.schema_type(SchemaType::from_iter([Type::String, Type::Null]))
    };
    if parameter.value == ParameterValue::ClientAssertionType {
        text = text.pattern(Some(format!("^{}$", regex_escape(CLIENT_ASSERTION_TYPE))));
    }
    if parameter.value == ParameterValue::TokenType {
        text = text.enum_values(Some([JWT_TOKEN_TYPE, ID_TOKEN_TYPE, ACCESS_TOKEN_TYPE]));
    }
    text.into()
}

/// `value` as a regular expression that matches only itself.
fn regex_escape(value: &str) -> String {
    value
        .chars()
        .flat_map(|c| {
            let special = "\\.+*?()|[]{}^$".contains(c);
            special.then_some('\\').into_iter().chain([c])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(schema: RefOr<Schema>) -> serde_json::Value {
        serde_json::to_value(schema).unwrap()
    }

    #[test]
    fn every_parameter_of_the_parser_is_documented_and_required_ones_are_required() {
        for (schema, table) in [
            (doc(TokenForm::schema()), &TOKEN_FORM[..]),
            (doc(TokenHintForm::schema()), &TOKEN_HINT_FORM[..]),
        ] {
            let properties = schema["properties"].as_object().unwrap();
            assert_eq!(properties.len(), table.len());
            for parameter in table {
                assert!(
                    properties.contains_key(parameter.name),
                    "{}",
                    parameter.name
                );
            }
            let required: Vec<&str> = table
                .iter()
                .filter(|p| p.required)
                .map(|p| p.name)
                .collect();
            assert_eq!(schema["required"], serde_json::json!(required));
        }
    }

    #[test]
    fn named_value_schemas_are_referenced_and_registered() {
        let token = doc(TokenForm::schema());
        assert_eq!(
            token["properties"]["grant_type"]["$ref"],
            "#/components/schemas/GrantType"
        );
        assert_eq!(
            token["properties"]["scope"]["oneOf"][1]["$ref"],
            "#/components/schemas/ScopeList"
        );
        assert_eq!(
            token["properties"]["client_assertion_type"]["pattern"],
            "^urn:ietf:params:oauth:client-assertion-type:jwt-bearer$"
        );
        let mut schemas = Vec::new();
        TokenForm::schemas(&mut schemas);
        TokenHintForm::schemas(&mut schemas);
        let names: Vec<&str> = schemas.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["GrantType", "ScopeList", "NonBlank"]);
    }

    #[test]
    fn an_escaped_value_matches_only_itself() {
        let pattern = format!("^{}$", regex_escape("a.b+c"));
        assert_eq!(pattern, r"^a\.b\+c$");
    }
}
