/* cmdipc tests — spec-v1 schema constraints, compiled in.
 *
 * The JSON Schemas of spec-v1 (the files of spec/schemas) are embedded in
 * schema_check.c, so a clone of the project checks messages without the
 * upstream spec beside it. A small validator implements exactly the keywords
 * those schemas use: type, required, properties, additionalProperties,
 * const, enum, minLength, oneOf, items and $ref between the files.
 *
 * One deliberate deviation, PROTOCOL.md section 0 rule 15: the `request`
 * member of execute.command.request may be any JSON value (the schema says
 * object). Every other constraint is enforced as written, in particular
 * additionalProperties:false at every level the schemas set it and
 * minLength:1 on ids.
 *
 * Used by the conformance runner (every message the registry emits) and by
 * the transport tests. Thread-safe.
 */
#ifndef CMDIPC_TEST_SCHEMA_CHECK_H
#define CMDIPC_TEST_SCHEMA_CHECK_H

#include <stddef.h>

#include <jansson.h>

/* Checks msg against the schema of its `type` (register.command.request,
 * ..., event). Returns 0 when it satisfies every constraint; otherwise -1
 * and a one-line reason naming the JSON path in err (when err is not NULL
 * and errlen > 0). An unknown or missing type is a failure. */
int cmdipc_test_schema_check(const json_t *msg, char *err, size_t errlen);

/* Checks value against the named schema file ("event.json",
 * "command-definition.json", "message.json", ...), as the `schema` field of
 * an encoding vector names it. Returns 0, or -1 with a reason in err (an
 * unknown schema name is a failure too). */
int cmdipc_test_schema_check_named(const char *schema, const json_t *value, char *err,
                                   size_t errlen);

/* What cmdipc may emit (PROTOCOL.md section 0 rule 15): msg satisfies
 * cmdipc_test_schema_check() and its optional payload members are omitted
 * rather than JSON null (`request`, `payload`, `response.result`). Returns 0,
 * or -1 with a reason in err. */
int cmdipc_test_emission_check(const json_t *msg, char *err, size_t errlen);

/* JSON equality as JSON Schema and JavaScript see it: numbers by value (1 ==
 * 1.0), arrays and objects deeply, key order ignored. NULL equals only NULL. */
int cmdipc_test_json_equal(const json_t *a, const json_t *b);

/* The schema file for a message type ("event" -> "event.json"), or NULL. */
const char *cmdipc_test_schema_for_type(const char *type);

#endif /* CMDIPC_TEST_SCHEMA_CHECK_H */
