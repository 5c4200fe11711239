// Byte sizes, written as the tool's flags and rules write them.

export const MiB = 1024 ** 2;
export const GiB = 1024 ** 3;
