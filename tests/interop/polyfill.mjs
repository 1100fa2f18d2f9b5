// matrix-js-sdk 43 targets Node 22; on Node 20 it only lacks
// Promise.withResolvers (ES2024). Imported before the SDK.
if (typeof Promise.withResolvers !== "function") {
    Promise.withResolvers = function withResolvers() {
        let resolve, reject;
        const promise = new this((res, rej) => {
            resolve = res;
            reject = rej;
        });
        return { promise, resolve, reject };
    };
}
