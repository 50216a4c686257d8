/**
 * isTransientDbError: what makes the bridge hold a batch (an infrastructure
 * fault of the database) versus split it (a statement failing for what it
 * writes). By the driver's errno/code/SQLSTATE, never by message text.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { isTransientDbError } from "../../shared/adapters/db/sql.ts";

const err = (fields: Record<string, unknown>, message = "any text at all") => Object.assign(new Error(message), fields);

describe("isTransientDbError", () => {
  const transient: [string, Error][] = [
    ["connection refused", err({ code: "ECONNREFUSED" })],
    ["pool timeout", err({ code: "ER_GET_CONNECTION_TIMEOUT", errno: 45028, sqlState: "HY000" })],
    ["socket closed", err({ code: "ER_SOCKET_UNEXPECTED_CLOSE", fatal: true })],
    ["a fatal error of the connection", err({ fatal: true, errno: 1927, code: "ER_CONNECTION_KILLED" })],
    ["deadlock", err({ errno: 1213, code: "ER_LOCK_DEADLOCK", sqlState: "40001" })],
    ["lock wait timeout", err({ errno: 1205, code: "ER_LOCK_WAIT_TIMEOUT", sqlState: "HY000" })],
    ["server shutting down", err({ errno: 1053, code: "ER_SERVER_SHUTDOWN", sqlState: "08S01" })],
    ["read-only after a failover", err({ errno: 1290, code: "ER_OPTION_PREVENTS_STATEMENT", sqlState: "HY000" })],
    ["table full", err({ errno: 1114, code: "ER_RECORD_FILE_FULL", sqlState: "HY000" })],
    ["too many connections", err({ errno: 1040, code: "ER_CON_COUNT_ERROR", sqlState: "08004" })],
    ["any connection exception (SQLSTATE 08)", err({ errno: 2013, sqlState: "08S01" })],
  ];
  const caused: [string, Error][] = [
    ["data too long", err({ errno: 1406, code: "ER_DATA_TOO_LONG", sqlState: "22001" })],
    ["incorrect string value", err({ errno: 1366, code: "ER_TRUNCATED_WRONG_VALUE_FOR_FIELD", sqlState: "22007" })],
    ["out of range", err({ errno: 1264, code: "ER_WARN_DATA_OUT_OF_RANGE", sqlState: "22003" })],
    ["duplicate key", err({ errno: 1062, code: "ER_DUP_ENTRY", sqlState: "23000" })],
    ["a null where none may be", err({ errno: 1048, code: "ER_BAD_NULL_ERROR", sqlState: "23000" })],
    ["a message that merely mentions a connection", err({}, "connection refused ECONNREFUSED deadlock")],
    ["not an error", null as unknown as Error],
  ];
  for (const [name, e] of transient) it(`transient: ${name}`, () => assert.equal(isTransientDbError(e), true));
  for (const [name, e] of caused) it(`caused by what was written: ${name}`, () => assert.equal(isTransientDbError(e), false));
});
