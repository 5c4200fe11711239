// Which Talos roles allow which MachineService calls (Talos 1.10.1+ RBAC table,
// ../shared/reference/talos-api.md section 3). Used to explain PermissionDenied.

export type TalosMethod =
  | "EtcdMemberList"
  | "EtcdStatus"
  | "EtcdAlarmList"
  | "EtcdAlarmDisarm"
  | "EtcdDefragment"
  | "EtcdForfeitLeadership"
  | "Logs"
  | "EtcdSnapshot"
  /** COSI's State.Get (resources such as etcdspecs), os:reader and up for resources that are not sensitive. */
  | "State.Get"
  /** StorageService's Statfs (`talosctl df`), Talos after 1.14. */
  | "Statfs";

export const ALLOWED_ROLES: Record<TalosMethod, readonly string[]> = {
  EtcdMemberList: ["os:admin", "os:operator", "os:reader", "os:etcd:backup"],
  EtcdStatus: ["os:admin", "os:operator", "os:reader", "os:etcd:backup"],
  EtcdAlarmList: ["os:admin", "os:operator", "os:reader", "os:etcd:backup"],
  EtcdAlarmDisarm: ["os:admin", "os:operator"],
  EtcdDefragment: ["os:admin", "os:operator"],
  EtcdForfeitLeadership: ["os:admin"],
  Logs: ["os:admin", "os:operator", "os:reader"],
  EtcdSnapshot: ["os:admin", "os:operator", "os:etcd:backup"],
  "State.Get": ["os:admin", "os:operator", "os:reader"],
  Statfs: ["os:admin", "os:operator", "os:reader"],
};

/** The least-privileged role that allows the call, for messages. */
export function roleNeeded(method: TalosMethod): string {
  const allowed = ALLOWED_ROLES[method];
  return ["os:reader", "os:operator"].find((r) => allowed.includes(r)) ?? "os:admin";
}

export function rolesAllow(roles: readonly string[], method: TalosMethod): boolean {
  return roles.some((r) => ALLOWED_ROLES[method].includes(r));
}
