// The contract between the harness's etcd side and its Talos API test server:
// what the test server needs from one real etcd member. Implemented in
// ./client.ts over etcd's own gRPC API (our own proto subset in ./proto).

export type EtcdAlarmType = "NONE" | "NOSPACE" | "CORRUPT";

export interface EtcdMemberStatusReply {
  memberId: bigint;
  leader: bigint;
  version: string;
  /** etcd >= 3.6 only; "" before. */
  storageVersion: string;
  dbSize: bigint;
  dbSizeInUse: bigint;
  /** etcd >= 3.6 only; 0n before. */
  dbSizeQuota: bigint;
  raftIndex: bigint;
  raftTerm: bigint;
  raftAppliedIndex: bigint;
  errors: string[];
  isLearner: boolean;
}

export interface EtcdMemberInfo {
  id: bigint;
  name: string;
  peerUrls: string[];
  clientUrls: string[];
  isLearner: boolean;
}

export interface EtcdAlarm {
  memberId: bigint;
  alarm: EtcdAlarmType;
}

/** One client bound to exactly one member's client URL (never load-balanced). */
export interface EtcdMemberClient {
  readonly clientUrl: string;
  status(signal?: AbortSignal): Promise<EtcdMemberStatusReply>;
  /** Blocks until etcd finishes; like etcd itself, never cancelled server-side. */
  defragment(signal?: AbortSignal): Promise<void>;
  /** etcd's Maintenance.Snapshot: the database in chunks, then its sha256 (what `etcdctl snapshot save` reads). */
  snapshot(signal?: AbortSignal): AsyncIterable<Uint8Array>;
  alarmList(signal?: AbortSignal): Promise<EtcdAlarm[]>;
  /** Raises an alarm as etcd's Maintenance.Alarm ACTIVATE does (tests only). */
  alarmActivate(alarm: Exclude<EtcdAlarmType, "NONE">, memberId: bigint, signal?: AbortSignal): Promise<void>;
  /** Disarms every alarm cluster-wide, like clientv3's AlarmDisarm with an empty member; returns what it disarmed. */
  alarmDisarmAll(signal?: AbortSignal): Promise<EtcdAlarm[]>;
  memberList(signal?: AbortSignal): Promise<EtcdMemberInfo[]>;
  /** Must be sent to the current leader; etcd answers ErrNotLeader otherwise. */
  moveLeader(targetMemberId: bigint, signal?: AbortSignal): Promise<void>;
  close(): void;
}
