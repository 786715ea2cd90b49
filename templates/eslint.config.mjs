// The pages' scripts (assets/*.js), checked in `make lint`: plain browser scripts that
// each page loads in order, common.js first (it defines `flashsale` for the others).
import js from '@eslint/js';
import globals from 'globals';

export default [
  {
    files: ['assets/*.js'],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: 'script',
      globals: { ...globals.browser, flashsale: 'readonly' },
    },
    rules: {
      ...js.configs.recommended.rules,
      'no-unused-vars': ['error', { caughtErrors: 'none' }],
      eqeqeq: 'error',
      'no-var': 'error',
      'prefer-const': 'error',
    },
  },
  // common.js is where `flashsale` is defined.
  { files: ['assets/common.js'], languageOptions: { globals: { flashsale: 'off' } } },
];
