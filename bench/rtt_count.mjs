// Counts round trips of every ioredis client in this process: a command, or a whole pipeline.
import IORedis from 'ioredis';

const Pipeline = Object.getPrototypeOf(new IORedis({ lazyConnect: true }).pipeline()).constructor;
export const counter = { roundTrips: 0 };
const send = IORedis.prototype.sendCommand;
IORedis.prototype.sendCommand = function sendCommand(command, stream, ...rest) {
  if (!stream) counter.roundTrips += 1; // commands of a pipeline come with its stream
  return send.call(this, command, stream, ...rest);
};
const exec = Pipeline.prototype.exec;
Pipeline.prototype.exec = function execPipeline(...args) {
  counter.roundTrips += 1;
  return exec.apply(this, args);
};
