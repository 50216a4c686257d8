/**
 * The table of request kinds (SPEC §3). Everything that differs by kind is a
 * column here or a `Record<RequestKind, …>` next to its use (the bridge's
 * effects, the response routes), so that adding a kind makes the compiler
 * point at every place that must learn about it.
 */
export const REQUEST_KINDS = ["topup", "withdraw", "pay", "remove"] as const;
export type RequestKind = (typeof REQUEST_KINDS)[number];

/** Fields a refusal may echo back (each shape-checked before it is). */
export type EchoField = "queue_id" | "order_id" | "chain" | "symbol" | "address" | "from_address" | "to_address" | "msg_type" | "amount";

export interface RequestKindSpec {
  /** without a queue_id there is nothing to answer under: dead-lettered */
  queueIdRequired: boolean;
  /** what a refusal of this kind echoes */
  echo: readonly EchoField[];
  /** `rmq_config` keys of its request and response routes */
  requestRoute: RequestKind;
  responseRoute: `${RequestKind}_resp`;
  /** the old system's per-address log events for a request and its answer */
  logEvent: string;
  respLogEvent: string;
}

export const REQUEST_KIND_SPECS: Record<RequestKind, RequestKindSpec> = {
  topup: {
    queueIdRequired: false,
    echo: ["queue_id", "chain", "symbol", "address"],
    requestRoute: "topup",
    responseRoute: "topup_resp",
    logEvent: "TopupReq",
    respLogEvent: "TopupResp",
  },
  withdraw: {
    queueIdRequired: true,
    echo: ["queue_id", "chain", "symbol", "from_address", "to_address", "amount"],
    requestRoute: "withdraw",
    responseRoute: "withdraw_resp",
    logEvent: "WithdrawReq",
    respLogEvent: "WithdrawResp",
  },
  pay: {
    queueIdRequired: true,
    // to_address and amount only exist in the single-payout form
    echo: ["queue_id", "chain", "symbol", "from_address", "to_address", "amount"],
    requestRoute: "pay",
    responseRoute: "pay_resp",
    logEvent: "PayReq",
    respLogEvent: "PayResp",
  },
  remove: {
    queueIdRequired: true,
    echo: ["queue_id", "msg_type", "chain", "symbol", "address"],
    requestRoute: "remove",
    responseRoute: "remove_resp",
    logEvent: "RemoveReq",
    respLogEvent: "RemoveResp",
  },
};
