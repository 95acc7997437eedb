import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { evaluateConditions, parseEtagList, validatorsFor } from '../../nodes/lib/http/conditional';

describe('http conditional requests', () => {
  const mtime = new Date('2024-05-01T10:20:30.456Z');
  const v = validatorsFor(1000, mtime);

  it('derives a strong ETag from size and mtime, and Last-Modified from mtime', () => {
    assert.match(v.etag, /^"[0-9a-f]+-[0-9a-f]+"$/);
    assert.notEqual(validatorsFor(1001, mtime).etag, v.etag);
    assert.notEqual(validatorsFor(1000, new Date(mtime.getTime() + 1)).etag, v.etag);
    assert.equal(v.lastModified, 'Wed, 01 May 2024 10:20:30 GMT');
  });

  it('parses entity-tag lists', () => {
    assert.equal(parseEtagList(' * '), null);
    assert.deepEqual(parseEtagList('"a", W/"b" ,"c,d"'), ['"a"', 'W/"b"', '"c,d"']);
    assert.deepEqual(parseEtagList('garbage'), []);
  });

  it('answers If-None-Match with 304 on a weak match, and it takes precedence over If-Modified-Since', () => {
    assert.equal(evaluateConditions({ 'if-none-match': v.etag }, v), 'not-modified');
    assert.equal(evaluateConditions({ 'if-none-match': `"x", W/${v.etag}` }, v), 'not-modified');
    assert.equal(evaluateConditions({ 'if-none-match': '*' }, v), 'not-modified');
    assert.equal(evaluateConditions({ 'if-none-match': '"x"', 'if-modified-since': v.lastModified }, v), 'proceed');
  });

  it('answers If-Modified-Since at second resolution', () => {
    assert.equal(evaluateConditions({ 'if-modified-since': v.lastModified }, v), 'not-modified');
    assert.equal(evaluateConditions({ 'if-modified-since': new Date(mtime.getTime() + 60_000).toUTCString() }, v), 'not-modified');
    assert.equal(evaluateConditions({ 'if-modified-since': new Date(mtime.getTime() - 60_000).toUTCString() }, v), 'proceed');
    assert.equal(evaluateConditions({ 'if-modified-since': 'yesterday' }, v), 'proceed');
    assert.equal(evaluateConditions({}, v), 'proceed');
  });

  it('fails If-Match and If-Unmodified-Since preconditions', () => {
    assert.equal(evaluateConditions({ 'if-match': '"x"' }, v), 'precondition-failed');
    assert.equal(evaluateConditions({ 'if-match': `W/${v.etag}` }, v), 'precondition-failed');
    assert.equal(evaluateConditions({ 'if-match': v.etag }, v), 'proceed');
    assert.equal(evaluateConditions({ 'if-unmodified-since': new Date(mtime.getTime() - 60_000).toUTCString() }, v), 'precondition-failed');
    assert.equal(evaluateConditions({ 'if-unmodified-since': v.lastModified }, v), 'proceed');
  });
});
