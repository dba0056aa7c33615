// Credit Meter's credits pages as framework-free custom elements: one ES module defines them all.
import { CmActivityLog } from "./components/activity-log.js";
import { CmByok } from "./components/byok.js";
import { CmCreditBar } from "./components/credit-bar.js";
import { CmGrants } from "./components/grants.js";
import { CmMemberBudgets } from "./components/member-budgets.js";
import { CmPayments } from "./components/payments.js";
import { CmSpendingControls } from "./components/spending-controls.js";
import { CmTopup } from "./components/topup.js";
import { CmUsageBreakdown } from "./components/usage-breakdown.js";
import { CmUsageChart } from "./components/usage-chart.js";

export const ELEMENTS = {
  "cm-credit-bar": CmCreditBar,
  "cm-usage-breakdown": CmUsageBreakdown,
  "cm-usage-chart": CmUsageChart,
  "cm-activity-log": CmActivityLog,
  "cm-grants": CmGrants,
  "cm-topup": CmTopup,
  "cm-payments": CmPayments,
  "cm-spending-controls": CmSpendingControls,
  "cm-member-budgets": CmMemberBudgets,
  "cm-byok": CmByok,
};

for (const [name, element] of Object.entries(ELEMENTS)) {
  if (!customElements.get(name)) customElements.define(name, element);
}

export {
  CmActivityLog,
  CmByok,
  CmCreditBar,
  CmGrants,
  CmMemberBudgets,
  CmPayments,
  CmSpendingControls,
  CmTopup,
  CmUsageBreakdown,
  CmUsageChart,
};
