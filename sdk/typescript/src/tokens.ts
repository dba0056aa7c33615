/**
 * Token counts from an OpenAI (Chat Completions or Responses), Anthropic or Google response,
 * as Credit Meter usage lines. `input` counts every prompt token (cached ones too); `output`
 * leaves out reasoning tokens, which have their own meter.
 */

export type TokenUsage = {
  model: string | null;
  input: number;
  output: number;
  cachedInput: number;
  reasoning: number;
};

export type UsageLine = { meter: string; quantity: number | string; model?: string | null };

type Any = Record<string, unknown> | null | undefined;

const pick = (obj: Any, ...names: string[]): unknown => {
  for (const name of names) {
    const value = obj?.[name];
    if (value !== undefined && value !== null) return value;
  }
  return undefined;
};
const num = (obj: unknown, ...names: string[]): number => Number(pick(obj as Any, ...names) ?? 0);

export function tokenUsage(response: unknown): TokenUsage {
  const r = response as Any;
  const model = (pick(r, "model", "modelVersion", "model_version") as string | undefined) ?? null;
  const google = pick(r, "usageMetadata", "usage_metadata") as Any;
  if (google) {
    return {
      model,
      input: num(google, "promptTokenCount", "prompt_token_count"),
      output: num(google, "candidatesTokenCount", "candidates_token_count"),
      cachedInput: num(google, "cachedContentTokenCount", "cached_content_token_count"),
      reasoning: num(google, "thoughtsTokenCount", "thoughts_token_count"),
    };
  }
  const usage = pick(r, "usage") as Any;
  if (!usage) throw new TypeError("the response has no token usage (usage or usageMetadata)");
  if (pick(usage, "prompt_tokens") !== undefined) {
    const reasoning = num(pick(usage, "completion_tokens_details"), "reasoning_tokens");
    return {
      model,
      input: num(usage, "prompt_tokens"),
      output: num(usage, "completion_tokens") - reasoning,
      cachedInput: num(pick(usage, "prompt_tokens_details"), "cached_tokens"),
      reasoning,
    };
  }
  if (pick(usage, "input_tokens_details", "output_tokens_details") !== undefined) {
    const reasoning = num(pick(usage, "output_tokens_details"), "reasoning_tokens");
    return {
      model,
      input: num(usage, "input_tokens"),
      output: num(usage, "output_tokens") - reasoning,
      cachedInput: num(pick(usage, "input_tokens_details"), "cached_tokens"),
      reasoning,
    };
  }
  // Anthropic: input_tokens leaves out what was read from or written to the cache.
  const cacheRead = num(usage, "cache_read_input_tokens");
  return {
    model,
    input: num(usage, "input_tokens") + cacheRead + num(usage, "cache_creation_input_tokens"),
    output: num(usage, "output_tokens"),
    cachedInput: cacheRead,
    reasoning: 0,
  };
}

/** The catalog's name for a provider's model: the longest catalog name it starts with. */
export function catalogModel(name: string | null, known: readonly string[]): string | null {
  if (name == null) return null;
  const hits = known.filter((k) => name === k || name.startsWith(`${k}-`));
  return hits.length ? hits.reduce((a, b) => (b.length > a.length ? b : a)) : name;
}

export function usageLines(
  counts: TokenUsage,
  options: { model?: string | null; cachedInputMeter?: string } = {},
): UsageLine[] {
  const model = options.model ?? counts.model;
  const pairs: Array<[string, number]> = options.cachedInputMeter
    ? [
        ["input_tokens", counts.input - counts.cachedInput],
        [options.cachedInputMeter, counts.cachedInput],
        ["output_tokens", counts.output],
      ]
    : [
        ["input_tokens", counts.input],
        ["output_tokens", counts.output],
      ];
  pairs.push(["reasoning_tokens", counts.reasoning]);
  const lines = pairs.filter(([, q]) => q > 0).map(([meter, quantity]) => ({ meter, model, quantity }));
  return lines.length ? lines : [{ meter: "input_tokens", model, quantity: 0 }];
}
